"""Releases from Argo's own YAML on the real cluster.

A Rollout's whole pod template reaches the pods; the apiserver's dry run refuses a bad one before
any write; workloadRef takes a Deployment's template and retires it; analyses run AnalysisTemplates
and ClusterAnalysisTemplates read from the cluster, with a secret argument (masked in the report)
and the canary's pod template hash.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator

import pytest
import yaml
from kubernetes import client
from prefect.artifacts import Artifact

from blocks import KubernetesCluster, PrometheusServer
from core.release.rollout import load_rollout
from flows.release.flow import release
from sandbox.platform import Platform
from tasks import kube
from tests.integration.release_helpers import V1, V2, settle

SIDECAR = "127.0.0.1:5001/kyb-proxy@sha256:" + "9" * 64
ROLLOUT = """\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web, labels: {team: payments}}
spec:
  replicas: 2
  revisionHistoryLimit: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web, tier: front}
      annotations: {example.com/owner: payments}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 10001}
      volumes: [{name: tmp, emptyDir: {sizeLimit: 64Mi}}]
      containers:
      - name: web
        image: web:placeholder
        ports: [{name: http, containerPort: 8080}]
        env: [{name: MODE, value: fast}]
        resources:
          requests: {cpu: 100m, memory: 64Mi}
          limits: {cpu: "1", memory: 128Mi}
        readinessProbe: {httpGet: {path: /health, port: http}, periodSeconds: 2}
        volumeMounts: [{name: tmp, mountPath: /tmp}]
      - name: proxy
        image: SIDECAR
  strategy:
    canary:
      canaryMetadata: {labels: {role: canary}}
      stableMetadata: {labels: {role: stable}}
      steps:
      - setWeight: 50
      - pause: {duration: 1s}
""".replace("SIDECAR", SIDECAR)


@pytest.fixture
def cluster(platform: Platform) -> KubernetesCluster:
    return KubernetesCluster.load("local")


def _rollout(namespace: str, image: str, **changes: object) -> dict:
    doc = yaml.safe_load(ROLLOUT)
    doc["metadata"]["namespace"] = namespace
    doc["spec"].update(changes)
    return doc


def _pods(cluster: KubernetesCluster, namespace: str, selector: str) -> list[dict]:
    api = kube.api_for(cluster)
    listed = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=selector)
    return [kube.to_dict(api, p) for p in listed.items]


def test_the_rollouts_pod_template_reaches_the_pods(
    cluster: KubernetesCluster, namespace: str
) -> None:
    for image in (V1, V2):  # a first release, then a canary over it
        release(spec=load_rollout(_rollout(namespace, image), image=image))
    assert settle(cluster, namespace, {"web": (V2, 2, 2), "web-canary": (V2, 0, 0)})
    pods = [
        p
        for p in _pods(cluster, namespace, "app=web,track=stable")
        if not p["metadata"].get("deletionTimestamp")
    ]
    assert pods, "no stable pods"
    for pod in pods:
        meta, spec = pod["metadata"], pod["spec"]
        assert meta["labels"]["tier"] == "front" and meta["labels"]["role"] == "stable"
        assert meta["annotations"]["example.com/owner"] == "payments"
        web, proxy = spec["containers"]
        assert web["image"] == V2 and proxy["image"] == SIDECAR
        assert web["resources"] == {
            "requests": {"cpu": "100m", "memory": "64Mi"},
            "limits": {"cpu": "1", "memory": "128Mi"},
        }
        assert web["readinessProbe"]["httpGet"]["path"] == "/health"
        assert {"name": "MODE", "value": "fast"} in web["env"]
        assert spec["securityContext"]["runAsUser"] == 10001
        assert {"name": "tmp", "mountPath": "/tmp"} in web["volumeMounts"]
    apps = client.AppsV1Api(kube.api_for(cluster))
    assert apps.read_namespaced_deployment("web", namespace).spec.revision_history_limit == 3


def test_the_apiserver_refuses_a_template_before_any_write(
    cluster: KubernetesCluster, namespace: str
) -> None:
    doc = _rollout(namespace, V1)
    doc["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "nowhere", "mountPath": "/data"}
    ]
    state = release(spec=load_rollout(doc, image=V1), return_state=True)
    assert state.is_failed()
    with pytest.raises(ValueError, match=r"refused Deployment .*/web in a dry run: .*nowhere"):
        state.result()
    api = kube.api_for(cluster)
    assert client.AppsV1Api(api).list_namespaced_deployment(namespace).items == []
    assert client.CoreV1Api(api).list_namespaced_service(namespace).items == []


WORKLOAD_REF = """\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: web-deployment, scaleDown: onsuccess}
  strategy:
    canary:
      steps: [{setWeight: 50}, {pause: {duration: 1s}}]
"""


def test_workload_ref_takes_the_deployments_template_and_retires_it(
    cluster: KubernetesCluster, namespace: str
) -> None:
    apps = client.AppsV1Api(kube.api_for(cluster))
    pod = {
        "metadata": {"labels": {"app": "web", "from": "deployment"}},
        "spec": {
            "containers": [
                {"name": "web", "image": V1, "resources": {"limits": {"memory": "96Mi"}}}
            ]
        },
    }
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "web-deployment"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": pod},
        },
    )
    doc = yaml.safe_load(WORKLOAD_REF) | {"metadata": {"name": "web", "namespace": namespace}}
    result = release(spec=load_rollout(doc, image=V1))
    assert "Deployment web-deployment scaled to 0" in result["summary"]
    found = apps.read_namespaced_deployment("web", namespace)
    assert found.spec.template.metadata.labels["from"] == "deployment"
    assert found.spec.template.spec.containers[0].resources.limits == {"memory": "96Mi"}
    assert found.spec.template.spec.containers[0].image == V1
    assert apps.read_namespaced_deployment("web-deployment", namespace).spec.replicas == 0


@pytest.fixture
def cluster_template(cluster: KubernetesCluster) -> Iterator[str]:
    """A ClusterAnalysisTemplate for one test (cluster-scoped: a unique name), deleted after."""
    name = f"always-up-{uuid.uuid4().hex[:6]}"
    api = client.CustomObjectsApi(kube.api_for(cluster))
    body = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ClusterAnalysisTemplate",
        "metadata": {"name": name},
        "spec": {
            "metrics": [
                {
                    "name": "up",
                    "successCondition": "result[0] >= 1",
                    "provider": {"prometheus": {"query": "vector(1)"}},
                }
            ]
        },
    }
    api.create_cluster_custom_object("argoproj.io", "v1alpha1", "clusteranalysistemplates", body)
    yield name
    api.delete_cluster_custom_object("argoproj.io", "v1alpha1", "clusteranalysistemplates", name)


HASH_CHECK = """\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: hash-check}
spec:
  args:
  - name: canary-hash
  - name: threshold
    valueFrom: {secretKeyRef: {name: analysis-secret, key: threshold}}
  metrics:
  - name: hash-check
    successCondition: result[0] == 0.4242
    provider:
      prometheus:
        query: label_replace(vector({{args.threshold}}), "hash", "{{args.canary-hash}}", "", "")
"""


def test_templates_from_the_cluster_with_a_secret_and_the_canary_hash(
    cluster: KubernetesCluster, namespace: str, cluster_template: str
) -> None:
    api = kube.api_for(cluster)
    client.CoreV1Api(api).create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "analysis-secret"},
            "data": {"threshold": base64.b64encode(b"0.4242").decode()},
        },
    )
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        "argoproj.io", "v1alpha1", namespace, "analysistemplates", yaml.safe_load(HASH_CHECK)
    )
    analysis = {
        "templates": [
            {"templateName": "hash-check"},
            {"templateName": cluster_template, "clusterScope": True},
        ],
        "args": [{"name": "canary-hash", "valueFrom": {"podTemplateHashValue": "Latest"}}],
    }
    canary = {"steps": [{"setWeight": 50}, {"analysis": analysis}]}
    release(spec=load_rollout(_rollout(namespace, V1), image=V1))
    doc = _rollout(namespace, V2, strategy={"canary": canary})
    result = release(spec=load_rollout(doc, image=V2), prometheus=PrometheusServer.load("local"))
    assert "runs" in result["summary"], result["summary"]
    rows = Artifact.get(f"analysis-{namespace}-web-step-1")
    assert rows is not None
    data = json.loads(rows.data) if isinstance(rows.data, str) else rows.data
    by_metric = {r["metric"]: r for r in data}
    assert by_metric["hash-check"]["outcome"] == "Successful"
    assert by_metric["up"]["outcome"] == "Successful"
    query = by_metric["hash-check"]["query"]
    assert "vector(***)" in query and "0.4242" not in json.dumps(data)
    hashes = {
        rs.metadata.labels["pod-template-hash"]
        for rs in client.AppsV1Api(api)
        .list_namespaced_replica_set(namespace, label_selector="track=canary")
        .items
    }
    assert any(f'"{h}"' in query for h in hashes), (query, hashes)


def test_a_missing_cluster_template_fails_before_any_write(
    cluster: KubernetesCluster, namespace: str
) -> None:
    canary = {
        "steps": [{"analysis": {"templates": [{"templateName": "nowhere", "clusterScope": True}]}}]
    }
    doc = _rollout(namespace, V1, strategy={"canary": canary})
    state = release(
        spec=load_rollout(doc, image=V1),
        prometheus=PrometheusServer.load("local"),
        return_state=True,
    )
    with pytest.raises(Exception, match="no analysis template 'cluster/nowhere'"):
        state.result()
    assert client.AppsV1Api(kube.api_for(cluster)).list_namespaced_deployment(namespace).items == []
