"""The pipeline's own image: the lock and the product on a base made here, non-root, by digest.

Costs on a 2-core machine: the first build ~2 min (the base's mmdebstrap ~45-65 s, the dependency
layer ~60 s), a later one with the same code and lock one registry request (< 1 s); each container
run ~2-3 s; the cold base test runs mmdebstrap into an empty folder (~45-65 s).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import docker
import httpx
import pytest

from sandbox import pipeline_image
from sandbox.platform import Platform

pytestmark = pytest.mark.platform


@pytest.fixture(scope="module")
def dc(platform: Platform) -> docker.DockerClient:
    return docker.DockerClient(base_url=platform.docker.env()["DOCKER_HOST"], timeout=300)


@pytest.fixture(scope="module")
def image(platform: Platform, dc: docker.DockerClient) -> str:
    """The pipeline's image by digest, pulled from the registry (so it really holds it)."""
    ref = pipeline_image.build_and_push(platform)
    user, password = platform.registry.credentials()
    dc.images.pull(ref, auth_config={"username": user, "password": password.get_secret_value()})
    return ref


def _run(dc: docker.DockerClient, image: str, *command: str) -> str:
    """Run as the image says (its user), on a read-only root with /tmp writable, as in the pod."""
    out = dc.containers.run(
        image, list(command), network_mode="host", remove=True, read_only=True, tmpfs={"/tmp": ""}
    )
    return out.decode()


def test_pushed_by_digest(platform: Platform, image: str) -> None:
    repo, digest = image.split("@")
    assert repo == f"{platform.registry.address}/{pipeline_image.REPOSITORY}"
    user, password = platform.registry.credentials()
    got = httpx.head(
        f"http://{repo.split('/')[0]}/v2/{pipeline_image.REPOSITORY}/manifests/{digest}",
        auth=(user, password.get_secret_value()),
        headers={"Accept": pipeline_image.MANIFESTS},
        timeout=10,
    )
    assert got.status_code == 200
    assert got.headers["Docker-Content-Digest"] == digest


def test_runs_as_non_root(dc: docker.DockerClient, image: str) -> None:
    assert _run(dc, image, "id", "-u").strip() == "10001"
    assert _run(dc, image, "id", "-g").strip() == "10001"


def test_holds_the_product_not_the_sandbox(dc: docker.DockerClient, image: str) -> None:
    script = (
        "import importlib.util, flows.release.flow, flows.rollback, prefect_kubernetes\n"
        "assert importlib.util.find_spec('sandbox') is None, 'sandbox is in the image'\n"
        "print('ok')"
    )
    assert _run(dc, image, "python", "-c", script).strip() == "ok"


def test_prefect_on_path(dc: docker.DockerClient, image: str) -> None:
    out = _run(dc, image, "prefect", "version")
    assert "3.9." in out
    assert "prefect-kubernetes" in out


def test_no_uv_in_the_image(dc: docker.DockerClient, image: str) -> None:
    assert _run(dc, image, "sh", "-c", "command -v uv || echo none").strip() == "none"


def test_unchanged_tree_is_not_rebuilt(
    platform: Platform, image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("rebuilt although nothing changed")

    monkeypatch.setattr(pipeline_image, "_build", refuse)
    monkeypatch.setattr(pipeline_image, "base", refuse)
    assert pipeline_image.build_and_push(platform) == image


def test_the_image_builds_with_no_build_cache(dc: docker.DockerClient) -> None:
    """Every step again, the locked dependencies downloaded anew, as on a new machine (~90 s)."""
    tag = pipeline_image.build(dc, f"kyb-pipeline-cold:{uuid.uuid4().hex[:8]}", nocache=True)
    try:
        script = "import flows.release.flow, prefect_kubernetes, os; print(os.getuid())"
        assert _run(dc, tag, "python", "-c", script).strip() == "10001"
    finally:
        dc.images.remove(tag, force=True)


def test_cold_base_from_an_empty_cache(dc: docker.DockerClient, tmp_path: Path) -> None:
    tarball = pipeline_image.rootfs(tmp_path)  # an empty cache: mmdebstrap really runs
    assert tarball.parent.parent == tmp_path
    tag = pipeline_image.import_rootfs(dc, tarball, f"kyb-debian-cold:{uuid.uuid4().hex[:8]}")
    try:
        script = "import ssl, sys; print(sys.version_info[:2] >= (3, 11))"
        assert _run(dc, tag, "python3", "-c", script).strip() == "True"
        # this machine's CAs are trusted inside (uv in the build reaches PyPI through its egress)
        cas = sorted(p.stem for p in pipeline_image.CA_DIR.glob("*.crt"))
        listed = _run(dc, tag, "ls", "/etc/ssl/certs").split()
        assert all(f"{ca}.pem" in listed for ca in cas)
    finally:
        dc.images.remove(tag, force=True)
