"""Bring the local platform up once per test session (or reuse the one that runs) for real tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from sandbox.errors import PlatformError
from sandbox.platform import BLOCK_NAME, Platform


def _unavailable(reason: str) -> None:
    """In CI a missing service fails the run loudly; elsewhere the tests are skipped with why."""
    if os.environ.get("CI"):
        pytest.fail(f"the local platform is required in CI and did not come up: {reason}")
    pytest.skip(f"local platform unavailable ({reason}); run `uv run sandbox up` first")


@pytest.fixture(scope="session")
def platform() -> Iterator[Platform]:
    """The running local platform, with Prefect pointed at its server for the whole session."""
    from prefect.settings import temporary_settings

    from core.delivery.approval import DEMO_SETTING
    from core.delivery.reach import EGRESS_SETTING

    plat = Platform()
    try:
        plat.up(say=lambda _msg: None)
    except PlatformError as exc:
        _unavailable(str(exc))
    # the network rule as the platform sets it for its worker: checks may dial loopback only
    os.environ.setdefault(EGRESS_SETTING, plat.env()[EGRESS_SETTING])
    os.environ.setdefault(DEMO_SETTING, plat.env()[DEMO_SETTING])  # its demo mode too
    with temporary_settings(plat.prefect.client_settings()):
        yield plat


@pytest.fixture(scope="session")
def kube(platform: Platform):
    """A kubernetes ApiClient built from the saved 'local' cluster block."""
    from blocks import KubernetesCluster

    return KubernetesCluster.load(BLOCK_NAME).api_client()


@pytest.fixture
def namespace(kube) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards."""
    import uuid

    from kubernetes import client

    core = client.CoreV1Api(kube)
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="session")
def argo_rollouts(platform: Platform):
    """Argo Rollouts' controller on the main cluster (opt-in on the platform): started if needed.

    `.ci/run` starts it; a run without it brings it up here (a cold build takes ~2 minutes).
    """
    try:
        platform.up(["argo-rollouts"], say=lambda _msg: None)
    except PlatformError as exc:
        _unavailable(f"argo-rollouts: {exc}")
    return platform.argo_rollouts


@pytest.fixture(scope="session")
def kube_worker(platform: Platform):
    """The kyb-kubernetes pool's worker in the main cluster (opt-in): started if needed.

    `.ci/run` starts it; a run without it builds the pipeline's image here first (minutes cold).
    """
    try:
        platform.up(["kube-worker"], say=lambda _msg: None)
    except PlatformError as exc:
        _unavailable(f"kube-worker: {exc}")
    return platform.kube_worker


@pytest.fixture
def environment(platform: Platform, namespace: str) -> str:
    """A saved Environment of its own whose namespace is the test's; its name.

    A release into that namespace records its attempts under this environment (flows/record.py).
    """
    import uuid

    from blocks import Environment, KubernetesCluster

    name = f"env-{uuid.uuid4().hex[:8]}"
    cluster = KubernetesCluster.load(BLOCK_NAME)
    Environment(name=name, cluster=cluster, namespace=namespace, analysis_templates=[]).save(name)
    return name
