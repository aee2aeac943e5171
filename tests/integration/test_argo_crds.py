"""Argo Rollouts' CRDs on both local clusters (sandbox/argo/crds.py), and their cold download.

After `sandbox up`, the main cluster (kyb) and the DR cluster (kyb-dr) both serve
argoproj.io/v1alpha1: an AnalysisTemplate with a Prometheus metric is stored and read back
as written, and so is a ClusterAnalysisTemplate; Rollouts can be listed. The download is tested
from an empty module cache, as on a new machine.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from sandbox.argo import crds as argo
from sandbox.errors import PlatformError
from sandbox.platform import Platform
from tests.integration.argo import (
    CLUSTER_TEMPLATES,
    GROUP,
    TEMPLATES,
    VERSION,
    analysis_template,
    unique,
)

CLUSTERS = ("kyb", "kyb-dr")
SERVED = {
    "analysistemplates": ("AnalysisTemplate", True),
    "clusteranalysistemplates": ("ClusterAnalysisTemplate", False),
    "rollouts": ("Rollout", True),
    "analysisruns": ("AnalysisRun", True),
    "experiments": ("Experiment", True),
}  # plural -> (kind, namespaced)


@pytest.fixture(scope="module")
def kubeconfigs(request: pytest.FixtureRequest) -> dict[str, Path]:
    """Each cluster's admin kubeconfig, by kwok name; the platform must be up (never a skip)."""
    try:
        plat: Platform = request.getfixturevalue("platform")  # runs `sandbox up` if needed
    except pytest.skip.Exception as exc:
        pytest.fail(f"the local platform (clusters {', '.join(CLUSTERS)}) is required: {exc}")
    found = {c.cluster.name: c.kubeconfig for c in (plat.cluster, plat.dr_cluster)}
    assert set(found) == set(CLUSTERS), found
    return found


@pytest.fixture(params=CLUSTERS)
def api(request: pytest.FixtureRequest, kubeconfigs: dict[str, Path]) -> Iterator[Any]:
    """An admin ApiClient of one cluster (each test runs on kyb and on kyb-dr)."""
    with config.new_client_from_config(str(kubeconfigs[request.param])) as api_client:
        yield api_client


@pytest.fixture
def test_namespace(api: Any) -> Iterator[str]:
    """A fresh namespace in the test's cluster, deleted afterwards."""
    core = client.CoreV1Api(api)
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def _crd(api: Any, name: str) -> dict[str, Any]:
    """A live CRD as JSON (the client's models would deserialize 650 kB of schema)."""
    ext = client.ApiextensionsV1Api(api)
    return json.loads(ext.read_custom_resource_definition(name, _preload_content=False).data)


def test_both_clusters_serve_argo_rollouts_v1alpha1(api: Any) -> None:
    for name in argo.CRD_NAMES:
        conditions = {c["type"]: c["status"] for c in _crd(api, name)["status"]["conditions"]}
        assert conditions.get("Established") == "True", name
    found = client.CustomObjectsApi(api).get_api_resources(GROUP, VERSION)
    served = {r.name: (r.kind, r.namespaced) for r in found.resources if "/" not in r.name}
    assert served == SERVED


def test_an_analysis_template_is_stored_and_read_back(api: Any, test_namespace: str) -> None:
    objects = client.CustomObjectsApi(api)
    name = unique("success-rate")
    body = analysis_template(name)
    created = objects.create_namespaced_custom_object(
        GROUP, VERSION, test_namespace, TEMPLATES, body
    )
    assert created["metadata"]["namespace"] == test_namespace
    read = objects.get_namespaced_custom_object(GROUP, VERSION, test_namespace, TEMPLATES, name)
    assert read["spec"] == body["spec"]  # the schema kept every field (nothing pruned)
    [metric] = read["spec"]["metrics"]
    assert metric["provider"]["prometheus"]["query"].startswith("sum(rate(http_requests_total")
    listed = objects.list_namespaced_custom_object(GROUP, VERSION, test_namespace, TEMPLATES)
    assert [i["metadata"]["name"] for i in listed["items"]] == [name]
    objects.delete_namespaced_custom_object(GROUP, VERSION, test_namespace, TEMPLATES, name)
    with pytest.raises(ApiException) as caught:
        objects.get_namespaced_custom_object(GROUP, VERSION, test_namespace, TEMPLATES, name)
    assert caught.value.status == 404
    rollouts = objects.list_namespaced_custom_object(GROUP, VERSION, test_namespace, "rollouts")
    assert rollouts["items"] == []  # served, and empty: no controller runs here


def test_a_cluster_analysis_template_is_stored_and_read_back(api: Any) -> None:
    objects = client.CustomObjectsApi(api)
    name = unique("cluster-success-rate")
    body = analysis_template(name, cluster_scope=True)
    objects.create_cluster_custom_object(GROUP, VERSION, CLUSTER_TEMPLATES, body)
    try:
        read = objects.get_cluster_custom_object(GROUP, VERSION, CLUSTER_TEMPLATES, name)
        assert read["spec"] == body["spec"] and "namespace" not in read["metadata"]
    finally:
        objects.delete_cluster_custom_object(GROUP, VERSION, CLUSTER_TEMPLATES, name)


def test_an_invalid_template_is_refused_by_the_schema(api: Any, test_namespace: str) -> None:
    """The CRDs carry Argo's OpenAPI schema: a metric without a name is a 422, not stored."""
    body = analysis_template(unique("bad"))
    del body["spec"]["metrics"][0]["name"]
    with pytest.raises(ApiException) as caught:
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, test_namespace, TEMPLATES, body
        )
    assert caught.value.status == 422


def test_installing_again_changes_nothing(kubeconfigs: dict[str, Path]) -> None:
    """`sandbox up` applies the CRDs every time: a second apply is a no-op (same versions)."""
    crds = argo.argo_crds()  # the module cache has it: no download
    for kubeconfig in kubeconfigs.values():
        with config.new_client_from_config(str(kubeconfig)) as api:
            before = {n: _crd(api, n)["metadata"]["resourceVersion"] for n in argo.CRD_NAMES}
            started = time.monotonic()
            assert argo.install(kubeconfig, crds) == list(argo.CRD_NAMES)
            assert time.monotonic() - started < 20, "a no-op apply should take about a second"
            after = {n: _crd(api, n)["metadata"]["resourceVersion"] for n in argo.CRD_NAMES}
            assert after == before


def test_argo_crds_download_into_an_empty_module_cache(tmp_path: Path, monkeypatch) -> None:
    """A new machine: the module comes through Go's module proxy into an empty cache."""
    cache = tmp_path / "gomodcache"
    monkeypatch.setenv("GOMODCACHE", str(cache))
    monkeypatch.setenv("GOFLAGS", "-modcacherw")  # so that tmp_path can be removed afterwards
    started = time.monotonic()
    crds = argo.argo_crds()
    seconds = time.monotonic() - started
    print(f"cold download of {argo.MODULE}@v{argo.VERSION}: {seconds:.1f}s")
    assert [c["metadata"]["name"] for c in crds] == list(argo.CRD_NAMES)
    assert all(c["kind"] == "CustomResourceDefinition" for c in crds)
    assert (cache / f"{argo.MODULE}@v{argo.VERSION}" / "manifests" / "crds").is_dir()
    assert argo.module_dir().is_relative_to(cache)  # warm now: the same folder


def test_a_failed_download_names_the_module_and_what_to_check(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GOMODCACHE", str(tmp_path / "gomodcache"))
    monkeypatch.setenv("GOFLAGS", "-modcacherw")
    monkeypatch.setenv("GOPROXY", "off")  # an empty cache and no proxy: the download fails
    with pytest.raises(PlatformError) as caught:
        argo.argo_crds()
    message = str(caught.value)
    assert caught.value.component == "argo-crds"
    assert f"{argo.MODULE}@v{argo.VERSION}" in message
    assert "GOPROXY" in message and "network" in message
