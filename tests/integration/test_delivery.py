"""The delivery flow end to end on the real platform.

CI (Go tests, gosec, docker build, push to the registry), gates, staging (rolling), production
(a replica-weighted canary with Prometheus analysis), checklists. The released pods run for real
(the pod runner) and users' requests reach them through Traefik's entry point and each
environment's route, so the analyses judge what those pods served: a faulty commit's canary
fails its analysis and production is rolled back. Failing tests or scan stop a delivery before
any push or deploy.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prefect.artifacts import Artifact
from prefect.client.orchestration import get_client
from prometheus_client.parser import text_string_to_metric_families

from blocks import ContainerRegistry, GitRepository, KubernetesCluster
from core.analysis.builtins import BUILTINS
from core.analysis.templates import rescheduled
from core.delivery.dora import dora
from core.errors import ConfigError
from flows.delivery import delivery
from sandbox.load import Load
from sandbox.platform import Platform
from tasks.dora import facts_from_prefect
from tests.integration.gitrepo import example_repository
from tests.integration.release_helpers import deployments

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kyb-platform"
APP, PRODUCTION = "kyb-platform", "kyb-production"
FAST = {"interval": 2, "count": 4, "initial_delay": 5}
ERROR_RATE = rescheduled(BUILTINS["error-rate"], **FAST)
CANARY = {
    "canary": {
        "steps": [
            {"setWeight": 20},
            {"analysis": {"templates": [{"templateName": "error-rate"}]}},
        ]
    }
}


def _sha() -> str:
    return uuid.uuid4().hex + uuid.uuid4().hex[:8]


def _deliver(commit: str, branch: str = "main", **kw):
    return delivery(
        commit=commit,
        branch=branch,
        production_strategy=CANARY,
        templates=[ERROR_RATE],
        auto_approve=True,
        return_state=True,
        **kw,
    )


def users(platform: Platform, env: str) -> Load:
    """Steady requests to `env`'s route (examples/kyb-platform/deploy/<env>/route.yaml)."""
    host = f"kyb-platform.kyb-{env}"
    return Load([platform.traefik.url], host=host, per_second=10, max_seconds=1200)


def _pushed(tmp_path: Path, changes: dict[str, str]) -> str:
    """A commit of the example with `changes`, in a repository block `test-delivery`; its SHA."""
    url, sha = example_repository(tmp_path, changes)
    GitRepository(url=url).save("test-delivery", overwrite=True)
    return sha


def _image(cluster: KubernetesCluster, ns: str) -> str | None:
    found = deployments(cluster, ns)
    return found["kyb-platform"][0] if "kyb-platform" in found else None


def _tags(registry: ContainerRegistry, repo: str) -> list[str]:
    auth = (registry.username, registry.password.get_secret_value())
    resp = httpx.get(f"{registry.url}/v2/{repo}/tags/list", auth=auth, timeout=10)
    return (resp.json().get("tags") or []) if resp.status_code == 200 else []


def _rolled_back_in_production(platform: Platform) -> float:
    """What the platform's metrics exporter counts of canaries rolled back in production."""
    text = httpx.get(platform.metrics.url, timeout=30).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            want = {"environment": "production", "strategy": "canary", "result": "rolled_back"}
            if s.name == "kyb_release_attempts_total" and s.labels == want:
                return s.value
    raise AssertionError("the exporter serves no kyb_release_attempts_total for production")


def _labels(state) -> dict:
    """The labels of the delivery run that ended in `state`."""
    with get_client(sync_client=True) as c:
        return dict(c.read_flow_run(state.state_details.flow_run_id).labels)


@pytest.fixture
def cluster(platform: Platform) -> KubernetesCluster:
    """The admin's cluster, production cleared of another strategy's Service and colors.

    These tests release production as a replica-weighted canary; the demo releases it blue-green
    through the production Environment, which points Service kyb-platform at one color. A canary
    release creates its Service only when missing, so a color left there would keep every request
    off the canary: the leftovers go first.
    """
    admin = KubernetesCluster.load("local")
    api = admin.api_client()
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    with contextlib.suppress(ApiException):
        if "color" in (core.read_namespaced_service(APP, PRODUCTION).spec.selector or {}):
            core.delete_namespaced_service(APP, PRODUCTION)
            for color in ("blue", "green"):
                with contextlib.suppress(ApiException):
                    apps.delete_namespaced_deployment(f"{APP}-{color}", PRODUCTION)
    return admin


@pytest.fixture
def registry(platform: Platform) -> ContainerRegistry:
    return ContainerRegistry.load("local")


def test_main_goes_through_staging_to_production(platform, cluster, registry) -> None:
    commit = _sha()
    with users(platform, "production") as production, users(platform, "staging"):
        state = _deliver(commit)
        assert state.is_completed(), state.message
        now = production.send(100)
    out = state.result()
    image = out["image"]
    record = _labels(state)
    assert record["kyb.release.production.result"] == "succeeded"
    assert record["kyb.release.production.image"] == image
    assert (record["kyb.app"], record["kyb.commit"]) == ("kyb-platform", commit)
    assert "@sha256:" in image
    assert _image(cluster, "kyb-staging") == image
    assert deployments(cluster, "kyb-production")["kyb-platform"] == (image, 10, 10)
    assert out["environments"]["production"]["strategy"] == "canary"
    assert now == {commit[:12]: 100}  # production's users are served by the pods of this commit
    checklist = Artifact.get("checklist-production-kyb-platform")
    assert checklist is not None and "demo-mode" in checklist.data
    report = Artifact.get("delivery-kyb-platform")
    assert report is not None and image in report.data


def test_faulty_commit_is_rolled_back_in_production(platform, cluster, tmp_path) -> None:
    """A commit whose production config makes 30% of requests fail, as its own pods serve them."""
    before = _image(cluster, "kyb-production")
    if before is None:  # production needs a stable version first
        assert _deliver(_sha()).is_completed()
        before = _image(cluster, "kyb-production")
    serving = users(platform, "production").send(20)
    since, counted = datetime.now(UTC), _rolled_back_in_production(platform)
    config = EXAMPLE / "deploy" / "production" / "config.env"
    faulty = {"deploy/production/config.env": f"{config.read_text()}KYB_ERROR_RATE=0.3\n"}
    commit = _pushed(tmp_path, faulty)
    with users(platform, "production") as production:
        state = _deliver(
            commit, git=GitRepository.load("test-delivery"), app_dir="examples/kyb-platform"
        )
        after = production.send(100)
    assert state.is_failed()
    assert "analysis error-rate ended Failed" in state.message
    record = _labels(state)  # the attempts, as DORA and the metrics count them
    assert record["kyb.release.staging.result"] == "succeeded"
    assert record["kyb.release.production.result"] == "rolled_back"
    assert "error-rate" in record["kyb.release.production.cause"]
    assert record["kyb.commit"] == commit
    dora_keys = dora(facts_from_prefect(since, datetime.now(UTC)), since, datetime.now(UTC))
    assert (dora_keys.attempts, dora_keys.deployments) == (1, 0)  # production's attempt
    assert dora_keys.failures == {"automatic rollback": 1}
    deadline = time.monotonic() + 30  # the platform's exporter caches its reads for 5 s
    while _rolled_back_in_production(platform) == counted and time.monotonic() < deadline:
        time.sleep(1)
    assert _rolled_back_in_production(platform) == counted + 1
    report = str(Artifact.get("delivery-kyb-platform").data)  # each stage, linked to its runs
    assert f"at `{commit[:12]}` (main): FAILED at production release: rolled_back" in report
    assert "| production release | **rolled_back** |" in report
    assert "Why: ReleaseFailed: production: failed: step analysis error-rate ended Failed" in report
    stages = {
        line.split("|")[1].strip(): line for line in report.splitlines() if line.startswith("| ")
    }
    assert "| CI | passed |" in stages["CI"] and "(subflow)" in stages["CI"]
    assert "| passed |" in stages["staging checks"]
    assert "/runs/task-run/" in stages["production release"]
    assert "release-result-kyb-platform" in stages["production release"]
    assert "checklist-production-kyb-platform" in stages["production gates"]
    assert deployments(cluster, "kyb-production")["kyb-platform"][0] == before
    assert deployments(cluster, "kyb-production").get("kyb-platform-canary", ("", 0))[1] == 0
    assert production.tally["500"] > 0  # the canary's own pods failed some of users' requests
    [version] = serving  # one version served production before: it serves it all again
    assert after == {version: 100}, after


@pytest.mark.parametrize("broken", ["tests", "scan"])
def test_failing_tests_or_scan_stop_before_push_and_deploy(
    platform, cluster, registry, tmp_path: Path, broken: str
) -> None:
    if broken == "tests":
        planted = {
            "broken_test.go": 'package main\n\nimport "testing"\n\n'
            'func TestPlantedBroken(t *testing.T) { t.Fatal("no") }\n'
        }
    else:  # G101: a hard-coded credential, which gosec reports
        planted = {
            "creds.go": 'package main\n\nconst dbPassword = "hunter2-not-a-real-password"\n\n'
            "var _ = dbPassword\n"
        }
    staging, commit = _image(cluster, "kyb-staging"), _pushed(tmp_path, planted)
    state = _deliver(
        commit, git=GitRepository.load("test-delivery"), app_dir="examples/kyb-platform"
    )
    assert state.is_failed()
    assert ("TestPlantedBroken" if broken == "tests" else "G101") in state.message, state.message
    assert _image(cluster, "kyb-staging") == staging  # nothing deployed
    assert not any(commit[:7] in tag for tag in _tags(registry, "kyb-platform"))  # nothing pushed


def test_a_branch_that_deploys_nowhere_fails_before_any_work() -> None:
    with pytest.raises(ConfigError, match="deploys nowhere"):
        delivery(commit=_sha(), branch="feature/x")


def test_inputs_that_would_leave_the_checkout_or_skip_production_gates_fail_first(
    monkeypatch,
) -> None:
    for app_dir in ("/etc", "../../outside", "examples/../../outside"):
        with pytest.raises(ConfigError, match="leaves the checkout"):
            delivery(commit=_sha(), branch="develop", app_dir=app_dir)
    monkeypatch.setenv("KYB_DEMO_MODE", "false")  # a team's worker: not the platform's demo
    with pytest.raises(ConfigError, match="auto_approve would approve production"):
        delivery(commit=_sha(), branch="main", auto_approve=True)


def test_service_urls_point_the_checks_at_the_released_service(cluster) -> None:
    """Outside the sandbox the pipeline reaches the Service itself (here.

    a loopback instance Prometheus scrapes as staging's stable track, standing for a port-forward).
    """
    from sandbox.fleet import scraped, wait_traffic

    prometheus = Platform().prometheus
    labels = {"service": "kyb-platform", "namespace": "kyb-staging", "track": "stable"}
    with scraped(prometheus, labels) as inst, Load([inst.url]):
        wait_traffic(prometheus, labels)
        state = delivery(
            commit=_sha(),
            branch="develop",
            templates=[ERROR_RATE],
            service_urls={"staging": inst.url},
            return_state=True,
        )
    assert state.is_completed(), state.message
    assert _image(cluster, "kyb-staging") == state.result()["image"]
    checks = Artifact.get("checklist-staging-kyb-platform")
    assert checks is not None  # the health item answered from the given URL, not skipped
    assert "Health checks passing (machine, Verification): **passed**: HTTP 200, healthy" in (
        checks.data
    )


def test_service_urls_are_checked_before_any_work() -> None:
    with pytest.raises(ConfigError, match="deploys to"):
        delivery(commit=_sha(), branch="develop", service_urls={"production": "http://127.0.0.1:1"})
    with pytest.raises(ConfigError, match=r"host 10\.0\.0\.7 is not in KYB_EGRESS_ALLOW"):
        delivery(commit=_sha(), branch="develop", service_urls={"staging": "http://10.0.0.7:80"})
