"""Where the delivery's checks go in each environment: service_urls, else the Environment's way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from blocks import Environment, KubernetesCluster
from blocks.endpoint import ServiceEndpoint
from core.analysis.verdict import NoJudge
from core.delivery.reach import CheckAccess
from core.release.spec import ReleaseSpec
from flows.delivery import DeliveryOptions, _endpoint
from tests.unit.test_blocks import make_kubeconfig

CLUSTER = KubernetesCluster(kubeconfig=make_kubeconfig("https://127.0.0.1:1"))
SPEC = ReleaseSpec.model_validate(
    {
        "app": "kyb-platform",
        "namespace": "kyb-production",
        "image": "127.0.0.1:5001/kyb-platform@sha256:" + "a" * 64,
        "container": "api",
        "labels": {"app": "kyb-platform"},
        "strategy": {"blueGreen": {"activeService": "kyb-active"}},
    }
)


def _options(**kw: Any) -> DeliveryOptions:
    """The delivery's options as data (no block is loaded or called)."""
    fields: dict[str, Any] = {
        "app": "kyb-platform",
        "app_path": Path("examples/kyb-platform"),
        "root": Path(),
        "cluster": None,
        "registry": None,
        "prometheus": None,
        "runner": NoJudge(),
        "production_strategy": None,
        "auto_approve": True,
        "approval_timeout": 1,
        "service_urls": {},
    }
    return DeliveryOptions(**{**fields, **kw})


def _production(**kw: Any) -> Environment:
    return Environment(name="production", cluster=CLUSTER, namespace="kyb-production", **kw)


def test_the_environment_s_service_proxy_reaches_the_stable_service() -> None:
    where = _endpoint(_options(), SPEC, "production", _production())
    assert isinstance(where, ServiceEndpoint) and where.access == CheckAccess.SERVICE_PROXY
    assert where.url == (
        "https://127.0.0.1:1/api/v1/namespaces/kyb-production/services/kyb-active:80/proxy"
    )


def test_url_and_cluster_dns_environments() -> None:
    public = _production(check_access="url", check_url="https://kyb.example.com")
    where = _endpoint(_options(), SPEC, "production", public)
    assert where == ServiceEndpoint("https://kyb.example.com")
    inside = _production(check_access="cluster-dns")
    where = _endpoint(_options(), SPEC, "production", inside)
    assert isinstance(where, ServiceEndpoint)
    assert where.url == "http://kyb-active.kyb-production.svc:80"


def test_service_urls_win_and_without_an_environment_nothing_is_called() -> None:
    given = _options(service_urls={"production": "http://127.0.0.1:8080"})
    where = _endpoint(given, SPEC, "production", _production())
    assert where == "http://127.0.0.1:8080"
    where = _endpoint(_options(), SPEC, "production", None)
    assert where is None
