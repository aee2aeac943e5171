"""Flow runs as Kubernetes Jobs: the in-cluster pool really runs, from the project's own image.

prefect.yaml's `release-in-cluster` and `rollback-in-cluster` are deployed as a team would
(`prefect deploy`), and runs started from the API go to the `kyb-kubernetes` pool. Its worker runs
in the cluster (the pod runner runs its pod), and each run becomes a Job in kyb-system whose pod
runs the pipeline's image under an environment's ServiceAccount. The flow uses in-cluster
configuration (the projected token, KUBERNETES_SERVICE_HOST), so it has that account's rights
only. The runs' logs and artifacts reach the Prefect server.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, watch
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
)

from blocks import KubernetesCluster, block_ref
from sandbox.components.kube_worker import IN_CLUSTER_BLOCK, NAMESPACE, SECRET
from tasks import kube
from tests.integration import in_cluster as jobs
from tests.integration import rbac
from tests.integration.release_helpers import V1, V2, Scripted, deployments, release_flow, spec

CANARY = {"canary": {"steps": [{"setWeight": 50}, {"setWeight": 100}]}}


@pytest.fixture(scope="module")
def in_cluster(platform, kube_worker) -> dict[str, str]:
    """prefect.yaml's in-cluster deployments, created by `prefect deploy`: name -> id."""
    return jobs.deploy(platform, ["release/release-in-cluster", "rollback/rollback-in-cluster"])


@pytest.fixture
def admin() -> KubernetesCluster:
    return KubernetesCluster.load("local")


@pytest.fixture
def namespaces(admin: KubernetesCluster) -> Iterator[tuple[str, str]]:
    """Two new namespaces: the dev ServiceAccount may release in the first, not the second."""
    core = client.CoreV1Api(kube.api_for(admin))
    allowed, refused = (f"t-{uuid.uuid4().hex[:8]}" for _ in range(2))
    for name in (allowed, refused):
        core.create_namespace({"metadata": {"name": name}})
    rbac.bind(admin, "dev", [allowed])
    try:
        yield allowed, refused
    finally:
        rbac.unbind(admin, allowed)
        for name in (allowed, refused):
            core.delete_namespace(name)


def _artifacts(run_id: uuid.UUID) -> list[Any]:
    with get_client(sync_client=True) as api:
        mine = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        return api.read_artifacts(artifact_filter=mine)


def _logs(run_id: uuid.UUID) -> str:
    with get_client(sync_client=True) as api:
        found = api.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
    return "\n".join(log.message for log in found)


def test_a_release_and_a_rollback_run_as_jobs_with_the_service_account_s_rights(
    admin: KubernetesCluster, namespaces: tuple[str, str], in_cluster: dict[str, str]
) -> None:
    allowed, refused = namespaces
    assert release_flow(spec(allowed, V1, CANARY), Scripted()).ok  # the stable version

    run = jobs.run(
        in_cluster["release/release-in-cluster"], jobs.release_params(allowed, V2, CANARY)
    )
    assert run.state_name == "Completed", run.state.message
    assert deployments(admin, allowed)["web"] == (V2, 3, 3)
    job, pod = jobs.finished_job(admin, run.id)
    assert job.status.succeeded == 1
    assert pod.spec.service_account_name == "kyb-pipeline-dev"
    assert pod.status.phase == "Succeeded"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 0
    env = {var.name: var for var in job.spec.template.spec.containers[0].env}
    # the API's address, and its auth as a reference to the Secret: no secret value in the Job
    assert env["PREFECT_API_URL"].value.endswith("/api")
    auth = env["PREFECT_API_AUTH_STRING"]
    assert auth.value is None and auth.value_from.secret_key_ref.name == SECRET
    assert not any("PASSWORD" in name or "TOKEN" in name for name in env)
    # its logs and artifacts reached the server, from inside the Job's pod
    assert "web" in _logs(run.id)
    artifacts = {a.key: str(a.data) for a in _artifacts(run.id)}
    assert V2 in artifacts["release-result-web"]
    assert f"release-progress-{allowed}-web" in artifacts

    denied = jobs.run(
        in_cluster["release/release-in-cluster"], jobs.release_params(refused, V2, CANARY)
    )
    assert denied.state_name == "Failed"
    assert "403" in denied.state.message or "forbidden" in denied.state.message.lower()
    assert deployments(admin, refused) == {}  # refused before any write

    back = jobs.run(
        in_cluster["rollback/rollback-in-cluster"],
        {
            "app": "web",
            "namespace": allowed,
            "cluster": block_ref(KubernetesCluster, IN_CLUSTER_BLOCK),
        },
    )
    assert back.state_name == "Completed", back.state.message
    assert deployments(admin, allowed)["web"] == (V1, 3, 3)
    _, rollback_pod = jobs.finished_job(admin, back.id)
    assert rollback_pod.spec.service_account_name == "kyb-pipeline-dev"


PROBE = """
import base64, json, os, sys
from kubernetes import client, config
config.load_incluster_config()  # KUBERNETES_SERVICE_HOST/PORT, the token and the CA
token = open("/var/run/secrets/kubernetes.io/serviceaccount/token").read()
claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
review = client.AuthenticationV1Api().create_self_subject_review({})
ok = (
    review.status.user_info.username == "system:serviceaccount:kyb-system:kyb-pipeline-dev",
    claims["kubernetes.io"]["pod"]["name"] == os.environ["POD_NAME"],  # bound to this pod
    open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read() == "kyb-system",
)
sys.exit(sum(1 << i for i, good in enumerate(ok) if not good))
"""


def test_a_job_pod_uses_in_cluster_configuration_with_a_token_bound_to_it(
    admin: KubernetesCluster, kube_worker
) -> None:
    """What the pod runner gives a Job's pod, as a kubelet would.

    The projected, bound token of its ServiceAccount, the cluster's CA, the apiserver's address.
    """
    name = f"t-probe-{uuid.uuid4().hex[:6]}"
    container = {
        "name": "probe",
        "image": kube_worker.image,
        "args": ["python", "-c", PROBE],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    job = {
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 600,
            "template": {
                "metadata": {"labels": {"kyb.dev/run": "true", "job-name": name}},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": "kyb-pipeline-dev",
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }
    api = kube.api_for(admin)
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    batch.create_namespaced_job(NAMESPACE, job)
    try:
        for event in watch.Watch().stream(
            batch.list_namespaced_job,
            NAMESPACE,
            field_selector=f"metadata.name={name}",
            timeout_seconds=180,
        ):
            status = event["object"].status
            if status.succeeded or status.failed:
                break
        [pod] = core.list_namespaced_pod(NAMESPACE, label_selector=f"job-name={name}").items
        terminated = pod.status.container_statuses[0].state.terminated
        assert terminated is not None, pod.status
        # 0: it was the dev account, its token named this pod, its namespace file said kyb-system
        assert terminated.exit_code == 0, terminated
        assert status.succeeded == 1
        volume = next(v for v in pod.spec.volumes if v.name.startswith("kube-api-access-"))
        assert any(s.service_account_token for s in volume.projected.sources)
    finally:
        batch.delete_namespaced_job(name, NAMESPACE, propagation_policy="Background")
