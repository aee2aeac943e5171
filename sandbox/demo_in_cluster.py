"""The demo's in-cluster release: `release-in-cluster` runs as a Job under dev's ServiceAccount.

It releases the version production runs into kyb-dev: the worker in kyb-system (`sandbox up
kube-worker`) turns the run into a Job whose pod runs the pipeline's image, and the flow reaches
the cluster through its pod's ServiceAccount (block `in-cluster`), kyb-pipeline-dev's rights only.
"""

from __future__ import annotations

from typing import Any

DEPLOYMENT = "release/release-in-cluster"
NAMESPACE = "kyb-dev"
APP = "kyb-platform"
# kyb-dev enforces the restricted Pod Security Standard; the pods stay KWOK's (no kyb.dev/run)
RESTRICTED = {
    "spec": {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": APP,
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
    }
}


def release_in_cluster(image: str) -> Any:
    """Run the deployment with `image` (by digest) for kyb-dev; the finished run."""
    from prefect.deployments import run_deployment

    from blocks import KubernetesCluster, PrometheusServer, block_ref
    from sandbox.components.kube_worker import IN_CLUSTER_BLOCK

    spec = {
        "app": APP,
        "namespace": NAMESPACE,
        "image": image,
        "replicas": 2,
        "strategy": {"canary": {"steps": [{"setWeight": 50}, {"setWeight": 100}]}},
        "firstDeploy": {"analysis": False},
        "template": RESTRICTED,
    }
    parameters = {
        "spec": spec,
        "cluster": block_ref(KubernetesCluster, IN_CLUSTER_BLOCK),
        "prometheus": block_ref(PrometheusServer, "local"),
    }
    return run_deployment(DEPLOYMENT, parameters=parameters, timeout=600)


def job_of(run: Any) -> str:
    """`namespace/Job` (ServiceAccount) that ran the run, from the cluster; "-" if none is left."""
    from kubernetes import client

    from blocks import KubernetesCluster
    from sandbox.components.kube_worker import NAMESPACE as SYSTEM

    api = KubernetesCluster.load("local").api_client()
    jobs = client.BatchV1Api(api).list_namespaced_job(
        SYSTEM, label_selector=f"prefect.io/flow-run-id={run.id}", _request_timeout=10
    )
    if not jobs.items:
        return "-"
    job = jobs.items[0]
    account = job.spec.template.spec.service_account_name
    return f"Job {SYSTEM}/{job.metadata.name} as {account}"
