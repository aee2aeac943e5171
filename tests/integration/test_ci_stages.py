"""The CI stages as tasks on the real platform (Prefect server, Docker, registry with htpasswd).

tests, quality gate, gosec, build and push, reuse, refused credentials, a registry that answers 503
for a while (through a loopback proxy in front of the real one), and the concurrent pipeline (gates
and build at once, the push only after every gate passed).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import secrets
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import docker
import httpx
import pytest
from prefect import flow
from prefect.artifacts import Artifact
from prefect.client.orchestration import get_client
from pydantic import SecretStr

from blocks import ContainerRegistry
from blocks.registry_manifests import MANIFEST_TYPES, image_labels, manifest_digest
from core.ci import (
    REVISION,
    BuildFailed,
    CompileFailed,
    GateFailed,
    GitRef,
    Severity,
    TestsFailed,
    ToolUnavailable,
    image_tags,
)
from core.errors import ConfigError, CredentialsError
from flows.ci import STAGES, CIResult, run_ci_stages
from sandbox.platform import BLOCK_NAME
from tasks import images, quality, security

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kyb-platform"
REPO = "kyb-ci-test/kyb-platform"
SOURCE = "https://github.com/acme/kyb-platform"
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}

PLANTED_TEST = """package main

import "testing"

func TestPlantedFailure(t *testing.T) {
\tt.Errorf("planted failure: want 1, got %d", 2)
}
"""
PLANTED_GOSEC = """package main

import "math/rand"

func jitter() int { return rand.Intn(10) }
"""
UNFORMATTED = "package main\n\nfunc   badlyFormatted( ) int {\nreturn 1}\n"


def _require(tool: str) -> None:
    if shutil.which(tool) or (Path("/usr/local/go/bin") / tool).exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"{tool} is required in CI and is not installed")
    pytest.skip(f"{tool} is not installed")


@pytest.fixture(autouse=True)
def no_retry_delay(monkeypatch) -> None:
    """Retries (if any) start at once: the tests count them, they don't wait for them."""
    for t in (
        quality.run_tests,
        quality.quality_gate,
        security.security_scan,
        images.prepare_context,
        images.build_and_push,
        images.build_image,
        images.push_image,
    ):
        monkeypatch.setattr(t, "retry_delay_seconds", 0)


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A temporary copy of the example service to plant problems in."""
    _require("go")
    return Path(shutil.copytree(EXAMPLE, tmp_path / "kyb", ignore=shutil.ignore_patterns("build")))


@pytest.fixture(scope="module")
def context(platform, tmp_path_factory) -> str:
    _require("go")
    return images.prepare_context(EXAMPLE, tmp_path_factory.mktemp("ctx") / "context")


@pytest.fixture
def docker_client(platform) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=platform.docker.env()["DOCKER_HOST"])
    yield client
    client.close()


def _run_count(state) -> int:
    """How often Prefect ran the task run behind `state` (1 = not retried)."""
    with get_client(sync_client=True) as client:
        return client.read_task_run(state.state_details.task_run_id).run_count


def _failure(state) -> BaseException:
    assert state.is_failed(), state
    return state.result(raise_on_failure=False)


def _ref(branch: str = "feature/CI-Stages_test") -> GitRef:
    return GitRef(sha=secrets.token_hex(20), branch=branch)


def _manifest(registry: ContainerRegistry, tag: str) -> str:
    user, password = registry.username or "", registry.password.get_secret_value()
    resp = httpx.head(
        f"{registry.url}/v2/{REPO}/manifests/{tag}",
        auth=(user, password),
        headers={"Accept": MANIFEST_TYPES},
    )
    assert resp.status_code == 200, resp
    return resp.headers["Docker-Content-Digest"]


def _drop_local(client: docker.DockerClient, registry: ContainerRegistry, tags) -> None:
    for tag in tags:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(f"{registry.address}/{REPO}:{tag}", force=True)


# --- tests -------------------------------------------------------------------------------------


def test_example_tests_pass_with_coverage_and_a_report(platform) -> None:
    _require("go")
    report = quality.run_tests(EXAMPLE, "kyb-platform", use_test_cache=False)
    assert report.total("passed") >= 10 and report.total("failed") == 0
    assert report.coverage is not None and report.coverage > 0
    table = Artifact.get("test-report-kyb-platform")
    assert table is not None and "kybplatform.local/kyb-platform" in str(table.data)


def test_failing_test_is_named_and_not_retried(platform, example: Path) -> None:
    (example / "planted_test.go").write_text(PLANTED_TEST)
    state = quality.run_tests(example, "kyb-planted", return_state=True)
    error = _failure(state)
    assert isinstance(error, TestsFailed)
    assert "TestPlantedFailure" in str(error) and "planted failure: want 1, got 2" in str(error)
    assert _run_count(state) == 1


def test_compile_error_carries_the_compiler_message(platform, example: Path) -> None:
    (example / "broken.go").write_text("package main\n\nfunc broken() int { return nope }\n")
    state = quality.run_tests(example, "kyb-broken", return_state=True)
    error = _failure(state)
    assert isinstance(error, CompileFailed) and "undefined: nope" in str(error)
    assert _run_count(state) == 1


def test_pytest_projects_are_supported(platform, tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n\ndef test_ok():\n    assert True\n\ndef test_bad():\n    assert 2 == 3\n"
        "\n@pytest.mark.skip(reason='later')\ndef test_later():\n    pass\n"
    )
    state = quality.run_tests(tmp_path, "py-sample", kind="pytest", return_state=True)
    error = _failure(state)
    assert isinstance(error, TestsFailed) and "test_sample test_bad" in str(error)
    assert _run_count(state) == 1


# --- quality gate and security scan ------------------------------------------------------------


def test_test_quality_and_scan_pass_on_an_empty_module_cache(
    platform, example: Path, tmp_path: Path, monkeypatch
) -> None:
    """A new machine: go fetches every module through the proxy; its progress is no finding."""
    cache = tmp_path / "gomodcache"
    monkeypatch.setenv("GOMODCACHE", str(cache))
    monkeypatch.setenv("GOFLAGS", "-modcacherw")  # so that tmp_path can be removed afterwards
    report = quality.quality_gate(example, "kyb-cold")
    assert [f for f in report.findings if f.tool == "go vet"] == []
    assert any(cache.rglob("*.mod")), "go fetched nothing: the cache was not cold"
    shutil.rmtree(cache)  # cold again for the scanner and the tests
    assert security.security_scan(example, "kyb-cold").findings == []
    shutil.rmtree(cache, ignore_errors=True)
    tests = quality.run_tests(example, "kyb-cold", use_test_cache=False)
    assert tests.packages and not any(p.failed for p in tests.packages)


def test_gofmt_violation_fails_at_major_and_passes_at_critical(platform, example: Path) -> None:
    (example / "unformatted.go").write_text(UNFORMATTED)
    state = quality.quality_gate(example, "kyb-fmt", threshold="major", return_state=True)
    error = _failure(state)
    assert isinstance(error, GateFailed) and "gofmt" in str(error)
    assert "unformatted.go" in str(error) and _run_count(state) == 1
    report = quality.quality_gate(example, "kyb-fmt", threshold="critical")
    assert [(f.tool, f.file, f.severity) for f in report.findings] == [
        ("gofmt", "unformatted.go", Severity.MAJOR)
    ]


def test_gosec_passes_the_example_and_fails_a_planted_finding(platform, example: Path) -> None:
    assert security.security_scan(EXAMPLE, "kyb-platform").findings == []
    (example / "planted.go").write_text(PLANTED_GOSEC)
    state = security.security_scan(example, "kyb-gosec", return_state=True)
    error = _failure(state)
    assert isinstance(error, GateFailed)
    assert "G404" in str(error) and "planted.go:5" in str(error)
    assert _run_count(state) == 1
    table = Artifact.get("security-report-kyb-gosec")
    assert table is not None and "G404" in str(table.data)


def test_unavailable_scanner_is_an_error_not_a_pass(platform, example, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(example))  # no bandit (nor anything else) on PATH
    state = security.security_scan(example, "kyb-py", scanners=["bandit"], return_state=True)
    error = _failure(state)
    assert isinstance(error, ToolUnavailable) and "bandit is not installed" in str(error)
    assert _run_count(state) == 1


# --- build and push ----------------------------------------------------------------------------


def test_build_push_tags_labels_digest_and_reuse(platform, context, docker_client, monkeypatch):
    registry, ref = ContainerRegistry.load(BLOCK_NAME), _ref()
    tags, commit_tag = image_tags(ref)
    pulled_ref = ""
    try:
        result = images.build_and_push(registry, REPO, context, ref, SOURCE, app="kyb-platform")
        assert not result.reused and result.tags == tags == ["feature-ci-stages_test", commit_tag]
        assert result.reference == f"{registry.address}/{REPO}@{result.digest}"
        assert all(_manifest(registry, tag) == result.digest for tag in tags)
        docker_client.images.remove(f"{registry.address}/{REPO}:{commit_tag}")
        registry.login(docker_client)
        pulled = docker_client.images.pull(result.reference)
        pulled_ref = result.reference
        assert result.reference in pulled.attrs["RepoDigests"]
        labels = pulled.labels
        assert labels["org.opencontainers.image.revision"] == ref.sha
        assert labels["org.opencontainers.image.source"] == SOURCE
        assert labels["org.opencontainers.image.version"] == "feature-ci-stages_test"
        assert labels["org.opencontainers.image.created"].endswith("Z")
        assert pulled.attrs["Config"]["User"] == "65532:65532"

        def no_build(*_a, **_k):
            raise AssertionError("rebuilt an image the registry already has")

        monkeypatch.setattr(images, "_build", no_build)
        again = images.build_and_push(registry, REPO, context, ref, SOURCE, app="kyb-platform")
        assert again.reused and again.digest == result.digest and again.tags == [commit_tag]
        assert image_labels(registry, REPO, commit_tag)[REVISION] == ref.sha
        monkeypatch.undo()
        # Another commit whose first 7 characters are the same has the same tag: never reused.
        twin = ref.model_copy(update={"sha": ref.sha[:7] + "f" * 33})
        assert image_tags(twin)[1] == commit_tag
        other = images.build_and_push(registry, REPO, context, twin, SOURCE, app="kyb-platform")
        assert not other.reused
        assert image_labels(registry, REPO, commit_tag)[REVISION] == twin.sha
    finally:
        _drop_local(docker_client, registry, tags)
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(pulled_ref, force=True) if pulled_ref else None


@pytest.mark.parametrize(
    ("dockerfile", "message"),
    [
        ("FROM scratch\nCOPY missing.txt /\n", r"Step 2/\d+ : COPY missing.txt / failed: COPY"),
        ("FROMM scratch\n", "unknown instruction: FROMM"),  # refused before any step runs
    ],
)
def test_build_error_is_named_and_not_retried(platform, tmp_path, dockerfile, message) -> None:
    (tmp_path / "Dockerfile").write_text(dockerfile)
    registry = ContainerRegistry.load(BLOCK_NAME)
    state = images.build_and_push(
        registry, REPO, tmp_path, _ref("broken"), SOURCE, return_state=True
    )
    error = _failure(state)
    assert isinstance(error, BuildFailed) and re.search(message, str(error)), error
    assert _run_count(state) == 1


def test_wrong_credentials_fail_at_once(platform, context) -> None:
    good = ContainerRegistry.load(BLOCK_NAME)
    wrong = ContainerRegistry(
        address=good.address,
        username=good.username,
        password=SecretStr("not-the-password"),
        insecure=True,
    )
    state = images.build_and_push(wrong, REPO, context, _ref(), SOURCE, return_state=True)
    error = _failure(state)
    assert isinstance(error, CredentialsError) and "not-the-password" not in str(error)
    assert _run_count(state) == 1


class FlakyRegistry:
    """A loopback proxy in front of the registry that answers 503 to its first requests.

    A loopback HTTP proxy in front of the real registry that answers 503 to the first
    `first` requests and to the first `pings` GET /v2/ after them, then forwards everything
    (headers, auth, streamed bodies) unchanged.
    """

    def __init__(self, upstream: str, first: int, pings: int) -> None:
        self.upstream, self.first, self.pings = upstream, first, pings
        self.refused: list[str] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FlakyRegistry:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def refuse(self, method: str, path: str, agent: str) -> bool:
        with self.lock:
            ping = method == "GET" and path == "/v2/"
            if self.first > 0 or (ping and self.pings > 0):
                self.first, self.pings = (
                    (self.first - 1, self.pings) if self.first > 0 else (self.first, self.pings - 1)
                )
                self.refused.append(f"{method} {path} ({agent})")
                return True
            return False

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args) -> None:
                pass

            def _body(self) -> Iterator[bytes]:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    for _ in range(1_000_000):  # bounded: a chunk at least per turn
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        chunk = self.rfile.read(size) if size else b""
                        self.rfile.readline()  # CRLF after the chunk (or the last-chunk)
                        if not size:
                            return
                        yield chunk
                left = int(self.headers.get("Content-Length") or 0)
                while left > 0:
                    chunk = self.rfile.read(min(left, 65536))
                    if not chunk:
                        return
                    left -= len(chunk)
                    yield chunk

            def _forward(self) -> None:
                agent = self.headers.get("User-Agent", "")
                if proxy.refuse(self.command, self.path, agent):
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.close_connection = True
                    return
                chunked = self.headers.get("Transfer-Encoding", "").lower() == "chunked"
                up = http.client.HTTPConnection(proxy.upstream, timeout=120)
                up.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for key, value in self.headers.items():
                    if key.lower() not in HOP:
                        up.putheader(key, value)
                if chunked:
                    up.putheader("Transfer-Encoding", "chunked")
                up.endheaders()
                for chunk in self._body():
                    up.send(b"%X\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                if chunked:
                    up.send(b"0\r\n\r\n")
                resp = up.getresponse()
                self.send_response_only(resp.status, resp.reason)
                for key, value in resp.getheaders():
                    if key.lower() not in HOP:
                        self.send_header(key, value)
                bodyless = self.command == "HEAD" or resp.status in (204, 304)
                sized = resp.getheader("Content-Length") is not None
                if not bodyless and not sized:
                    self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                while not bodyless and (chunk := resp.read(65536)):
                    self.wfile.write(chunk if sized else b"%X\r\n%s\r\n" % (len(chunk), chunk))
                if not bodyless and not sized:
                    self.wfile.write(b"0\r\n\r\n")
                up.close()

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward  # noqa: N815 (http.server's names)

        return Handler


def test_registry_503s_are_retried_then_the_push_succeeds(platform, context, docker_client):
    real = ContainerRegistry.load(BLOCK_NAME)
    ref = _ref("retry")
    tags, commit_tag = image_tags(ref)
    with FlakyRegistry(real.address, first=1, pings=2) as proxy:
        flaky = ContainerRegistry(
            address=proxy.address, username=real.username, password=real.password, insecure=True
        )
        try:
            state = images.build_and_push(flaky, REPO, context, ref, SOURCE, return_state=True)
            assert state.is_completed(), state.result(raise_on_failure=False)
            result = state.result()
        finally:
            _drop_local(docker_client, flaky, tags)
    assert len(proxy.refused) == 3, proxy.refused
    assert any("docker" in r.lower() for r in proxy.refused), proxy.refused  # the daemon too
    assert _run_count(state) == 3  # HEAD refused -> retry; daemon login refused -> retry; done
    assert _manifest(real, commit_tag) == result.digest  # the push reached the real registry


# --- the concurrent pipeline -------------------------------------------------------------------


@flow(name="ci-stages-test")
def ci_stages(directory: str, ref: GitRef, app: str) -> CIResult:
    """The pipeline as a flow would run it (Prefect's default ThreadPoolTaskRunner)."""
    registry = ContainerRegistry.load(BLOCK_NAME)
    return run_ci_stages(registry, REPO, directory, ref, SOURCE, app, use_test_cache=False)


def test_pipeline_pushes_once_every_gate_passed(platform, docker_client) -> None:
    _require("go")
    registry, ref = ContainerRegistry.load(BLOCK_NAME), _ref("pipeline")
    tags, commit_tag = image_tags(ref)
    try:
        result = ci_stages(str(EXAMPLE), ref, "kyb-platform")
    finally:
        _drop_local(docker_client, registry, tags)
    assert result.tests.total("passed") >= 10 and result.tests.total("failed") == 0
    assert result.quality.blocking == [] and result.security.findings == []
    assert not result.image.reused and result.image.tags == tags
    assert _manifest(registry, commit_tag) == result.image.digest  # the registry holds it
    assert result.image.reference == f"{registry.address}/{REPO}@{result.image.digest}"
    assert all(_manifest(registry, tag) == result.image.digest for tag in tags)
    assert set(result.seconds) == {*STAGES, "push", "total"}
    assert result.seconds["total"] >= max(result.seconds[s] for s in STAGES)


def test_pipeline_with_a_failing_test_pushes_nothing(platform, example, docker_client) -> None:
    (example / "planted_test.go").write_text(PLANTED_TEST)
    registry, ref = ContainerRegistry.load(BLOCK_NAME), _ref("pipeline-fail")
    tags, commit_tag = image_tags(ref)
    name = f"{registry.address}/{REPO}"
    try:
        state = ci_stages(str(example), ref, "kyb-pipeline-fail", return_state=True)
        error = _failure(state)
        built = docker_client.images.get(f"{name}:{commit_tag}")  # the build ran to its end
    finally:
        _drop_local(docker_client, registry, tags)
    assert isinstance(error, TestsFailed), error
    assert "TestPlantedFailure" in str(error) and "planted failure: want 1, got 2" in str(error)
    assert built.labels["org.opencontainers.image.revision"] == ref.sha
    for tag in tags:  # neither the commit tag nor the branch tag reached the registry
        assert manifest_digest(registry, REPO, tag) is None, tag


ENV_DUMP = """package main

import (
\t"os"
\t"strings"
\t"testing"
)

// A test from the repository under test that tries to read the pipeline's credentials.
func TestDumpEnvironment(t *testing.T) {
\tdump := []byte(strings.Join(os.Environ(), "\\n"))
\tif err := os.WriteFile("environment.txt", dump, 0o600); err != nil {
\t\tt.Fatal(err)
\t}
}
"""
SECRETS = {
    "PREFECT_API_KEY": "pnu_planted0secret",
    "PREFECT_API_AUTH_STRING": "admin:planted1secret",
    "KYB_REGISTRY_PASSWORD": "planted2secret",
    "AWS_SECRET_ACCESS_KEY": "planted3secret",
    "GITHUB_TOKEN": "ghp_planted4secret",
    "DOCKER_AUTH_CONFIG": '{"auths":{"r":{"auth":"planted5secret"}}}',
}


def test_code_under_test_sees_no_credential_of_the_pipeline(
    platform, example: Path, monkeypatch
) -> None:
    """The repository's own tests run with the builds' variables only, not the worker's secrets."""
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    (example / "envdump_test.go").write_text(ENV_DUMP)
    report = quality.run_tests(example, "kyb-env", race=False, use_test_cache=False)
    assert report.packages and not any(p.failed for p in report.packages)
    seen = dict(
        line.split("=", 1) for line in (example / "environment.txt").read_text().splitlines()
    )
    leaked = [k for k, v in SECRETS.items() if k in seen or any(v in s for s in seen.values())]
    assert leaked == []
    assert not [k for k in seen if k.startswith(("PREFECT_", "KYB_", "AWS_"))], sorted(seen)
    assert "PATH" in seen and "HOME" in seen  # what a build needs is still there


def test_a_version_that_could_carry_flags_is_refused_before_the_build(example: Path) -> None:
    with pytest.raises(ConfigError, match="not a plain version"):
        images.prepare_context.fn(example, version="1.0 -X main.admin=true")
    with pytest.raises(ConfigError, match="outside"):
        images.prepare_context.fn(example, script="../../../bin/sh")
