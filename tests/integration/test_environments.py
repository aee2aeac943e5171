"""Releases that name an app, an image and an environment, on the real cluster and Prefect server.

Each release test saves its own Environment block: a copy of the staging overlay placed in a
fresh namespace, with staging's ServiceAccount bound there as deploy/rbac/staging.yaml binds it in
kyb-staging, so the release runs with the environment's own credentials and nothing else.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from prefect.artifacts import Artifact
from prefect.exceptions import ParameterTypeError

from blocks import Environment, GitRepository, KubernetesCluster, block_ref
from core.analysis.builtins import BUILTINS
from core.analysis.templates import rescheduled
from core.errors import ConfigError
from core.release.errors import ReleaseFailed
from flows.delivery import delivery
from flows.release.flow import release
from sandbox import rbac as admin_steps
from sandbox.load import Load
from sandbox.platform import BLOCK_NAME
from sandbox.podrunner import RUN_LABEL
from tasks import kube
from tasks.gates import render_overlay
from tests.integration import rbac
from tests.integration.gitrepo import example_repository
from tests.integration.release_helpers import V1, V2, deployments, resume_when_paused, spec

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kyb-platform" / "deploy"
APP = "kyb-platform"
STAGING_HOST = "kyb-platform.kyb-staging"


def _overlay(target: Path, namespace: str) -> Path:
    """The staging overlay, copied and placed in `namespace` (the base is the example's own)."""
    overlay = target / "overlay"
    shutil.copytree(EXAMPLE / "staging", overlay)
    base = os.path.relpath(EXAMPLE / "base", overlay)  # kustomize wants relative resources
    text = (overlay / "kustomization.yaml").read_text()
    text = text.replace("namespace: kyb-staging", f"namespace: {namespace}")
    (overlay / "kustomization.yaml").write_text(text.replace("- ../base", f"- {base}"))
    ns_file = overlay / "namespace.yaml"
    ns_file.write_text(ns_file.read_text().replace("name: kyb-staging", f"name: {namespace}"))
    # these tests release made-up digests: their pods stay simulated instead of failing to pull
    patch = overlay / "deployment-patch.yaml"
    doc = yaml.safe_load(patch.read_text())
    doc["spec"]["template"].setdefault("metadata", {})["labels"] = {RUN_LABEL: "false"}
    patch.write_text(yaml.safe_dump(doc))
    return overlay


@pytest.fixture
def admin(platform) -> KubernetesCluster:
    return KubernetesCluster.load(BLOCK_NAME)


@pytest.fixture
def overlay(tmp_path: Path, namespace: str) -> Path:
    return _overlay(tmp_path, namespace)


@pytest.fixture
def label_namespace(admin, overlay) -> Callable[[], None]:
    """The administrator's step: the namespace gets the labels the overlay declares."""

    def apply() -> None:
        [ns] = [o for o in render_overlay.fn(overlay) if o["kind"] == "Namespace"]
        admin_steps.apply_objects(admin, [ns])

    return apply


@pytest.fixture
def environment(admin, namespace, overlay) -> Iterator[Callable[..., str]]:
    """Save an Environment block for `namespace` (fields as given); returns its name."""
    rbac.bind(admin, "staging", [namespace])
    cluster = rbac.cluster_as_service_account(admin, "staging", namespace)
    saved: list[str] = []

    def save(**fields: Any) -> str:
        name = f"t-{uuid.uuid4().hex[:8]}"
        defaults = {"name": "staging", "namespace": namespace, "analysis_templates": []}
        Environment(cluster=cluster, overlay=str(overlay), **{**defaults, **fields}).save(name)
        saved.append(name)
        return Environment.load(name)  # a saved block, as the run form's selector gives it

    yield save
    for name in saved:
        Environment.delete(name)
    admin_steps.unbind(admin, namespace)


def _live(admin: KubernetesCluster, namespace: str) -> dict[str, list[str]]:
    api = kube.api_for(admin)
    core, scaling = client.CoreV1Api(api), client.AutoscalingV2Api(api)
    return {
        "configmaps": sorted(
            c.metadata.name for c in core.list_namespaced_config_map(namespace).items
        ),
        "secrets": sorted(s.metadata.name for s in core.list_namespaced_secret(namespace).items),
        "serviceaccounts": sorted(
            a.metadata.name for a in core.list_namespaced_service_account(namespace).items
        ),
        "hpas": sorted(
            h.metadata.name
            for h in scaling.list_namespaced_horizontal_pod_autoscaler(namespace).items
        ),
    }


def test_a_release_names_an_app_an_image_and_an_environment(
    admin, namespace, environment, label_namespace
) -> None:
    label_namespace()
    name = environment()
    out = release(app=APP, image=V1, environment=name)
    assert out["image"] == V1
    assert deployments(admin, namespace) == {APP: (V1, 3, 3)}  # the overlay's 3 replicas
    live = _live(admin, namespace)
    assert any(c.startswith("kyb-config-") for c in live["configmaps"])
    assert [s for s in live["secrets"] if s.startswith("kyb-secrets-")] == [
        o["metadata"]["name"]
        for o in render_overlay.fn(EXAMPLE / "staging")
        if o["kind"] == "Secret"
    ]
    assert APP in live["serviceaccounts"] and live["hpas"] == ["kyb-platform-hpa"]
    again = release(app=APP, image=V2, environment=name)  # a second release moves it on
    assert again["image"] == V2 and deployments(admin, namespace) == {APP: (V2, 3, 3)}


def test_parameters_that_conflict_with_the_environment_fail_before_any_write(
    admin, namespace, environment, label_namespace
) -> None:
    label_namespace()
    name = environment()
    elsewhere = spec("kyb-production", V1, {"rolling": {}})
    cases: list[tuple[dict[str, Any], str]] = [
        (
            {"spec": elsewhere},
            f"spec.namespace='kyb-production' conflicts with environment "
            f"'staging', which sets '{namespace}'",
        ),
        (
            {"app": APP, "image": V1, "cluster": KubernetesCluster.load(BLOCK_NAME)},
            "cluster='local' conflicts with environment 'staging'",
        ),
        ({"app": APP}, "give app and image"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ConfigError) as refused:
            release(environment=name, **kwargs)
        assert message in str(refused.value)
    with pytest.raises(ParameterTypeError) as absent:  # named by reference, as a script does
        release(app=APP, image=V1, environment=block_ref(Environment, "absent-env"))
    assert "absent-env" in repr(absent.value.__cause__)
    with pytest.raises(ConfigError, match="give an environment with an app and an image"):
        release(app=APP, image=V1)
    canary = environment(strategy={"canary": {"steps": [{"setWeight": 50}]}})
    bluegreen = spec(namespace, V1, {"blueGreen": {"activeService": "web"}})
    with pytest.raises(ConfigError, match=r"spec\.strategy='blueGreen' conflicts"):
        release(spec=bluegreen, environment=canary)
    assert deployments(admin, namespace) == {}


def test_namespace_labels_unlike_the_overlay_stop_the_release(
    admin, namespace, environment
) -> None:
    """The pipeline only reads its Namespace: labels the overlay declares must already be set."""
    name = environment()  # the namespace has none of the overlay's Pod Security labels
    with pytest.raises(ConfigError) as refused:
        release(app=APP, image=V1, environment=name)
    told = str(refused.value)
    assert (
        f"namespace {namespace}: label pod-security.kubernetes.io/enforce is unset, the overlay "
        "says 'restricted'" in told
    )
    assert "an administrator applies the overlay's namespace.yaml" in told
    assert deployments(admin, namespace) == {}


def test_an_environment_that_requires_approval_waits_for_a_person(
    admin, namespace, environment, label_namespace
) -> None:
    label_namespace()
    name = environment(approval_required=True)
    no = {"choice": "abort", "decided_by": "tester", "reason": "not today"}
    resume_when_paused([no])
    with pytest.raises(ReleaseFailed, match="requires approval: abort by tester \\(not today\\)"):
        release(app=APP, image=V1, environment=name)
    assert deployments(admin, namespace) == {}  # nothing was written
    resume_when_paused([{"choice": "promote", "decided_by": "tester", "reason": "go"}])
    assert release(app=APP, image=V1, environment=name)["image"] == V1
    assert deployments(admin, namespace) == {APP: (V1, 3, 3)}


FAST = {"interval": 2, "count": 4, "initial_delay": 5}


def test_delivery_to_the_staging_environment_runs_with_staging_s_own_block(platform) -> None:
    """A develop push delivered with environment=staging runs as staging's ServiceAccount.

    Its own saved block passes the gates (the apiserver's dry-run), applies the overlay's objects
    but not its Namespace (only read and compared), and releases.
    """
    staging = Environment.load("staging")
    with pytest.raises(ConfigError, match="environment 'production' is not one the branch"):
        delivery(
            commit=uuid.uuid4().hex, branch="develop", environment=Environment.load("production")
        )
    with pytest.raises(ConfigError, match="cluster='local' conflicts"):
        delivery(
            commit=uuid.uuid4().hex,
            branch="develop",
            environment=staging,
            cluster=KubernetesCluster.load("local"),
        )
    commit = uuid.uuid4().hex + uuid.uuid4().hex[:8]
    # staging's users, through the platform's entry point and staging's route (route.yaml)
    users = Load([platform.traefik.url], host=STAGING_HOST, per_second=10, max_seconds=900)
    with users:
        state = delivery(
            commit=commit,
            branch="develop",
            environment=Environment.load("staging"),
            templates=[rescheduled(BUILTINS["error-rate"], **FAST)],
            auto_approve=True,
            return_state=True,
        )
        assert state.is_completed(), state.message
        now = users.send(50)
    image = state.result()["image"]
    assert deployments(staging.cluster, "kyb-staging")[APP][0] == image
    assert rbac.whoami(staging.cluster).endswith(":kyb-pipeline-staging")
    assert now == {commit[:12]: 50}  # its own pods answer staging's users: the version built
    checks = Artifact.get("checklist-staging-kyb-platform")
    assert checks is not None  # through the service proxy to those pods
    assert "Health checks passing (machine, Verification): **passed**: HTTP 200, healthy" in (
        checks.data
    )
    report = Artifact.get(f"analysis-kyb-staging-{APP}-post-deploy")
    assert report is not None
    [row] = json.loads(report.data) if isinstance(report.data, str) else report.data
    # measured on what staging's own pods served (their track label), not left without data
    assert row["outcome"] == "Successful" and 'track=~"stable"' in row["query"], row


def test_an_environment_releases_the_overlay_of_the_commit_it_fetched(platform, tmp_path) -> None:
    """The staging overlay's config comes from the pushed commit, not the worker's checkout."""
    marker = uuid.uuid4().hex
    config = EXAMPLE / "staging" / "config.env"
    changed = {"deploy/staging/config.env": f"{config.read_text()}KYB_TEST_MARKER={marker}\n"}
    url, commit = example_repository(tmp_path, changed)
    GitRepository(url=url).save("test-environment-source", overwrite=True)
    with Load([platform.traefik.url], host=STAGING_HOST, per_second=10, max_seconds=900):
        state = delivery(
            commit=commit,
            branch="develop",
            environment=Environment.load("staging"),
            git=GitRepository.load("test-environment-source"),
            app_dir="examples/kyb-platform",
            templates=[rescheduled(BUILTINS["error-rate"], **FAST)],
            auto_approve=True,
            return_state=True,
        )
    assert state.is_completed(), state.message
    admin = KubernetesCluster.load(BLOCK_NAME).api_client()
    live = client.AppsV1Api(admin).read_namespaced_deployment(APP, "kyb-staging")
    [source] = live.spec.template.spec.containers[0].env_from
    data = (
        client.CoreV1Api(admin)
        .read_namespaced_config_map(source.config_map_ref.name, "kyb-staging")
        .data
    )
    assert data["KYB_TEST_MARKER"] == marker  # the commit's own config, released with it
