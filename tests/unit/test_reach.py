"""How checks reach a Service: proxy paths, cluster DNS URLs, the egress allowlist (no I/O)."""

from __future__ import annotations

import pytest

from core.delivery.reach import (
    CheckAccess,
    EgressAllowlist,
    apiserver_refusal,
    cluster_dns_url,
    served_by,
    service_proxy_path,
)
from core.errors import ConfigError
from core.release.spec import ReleaseSpec
from sandbox.settings import LOOPBACK_ONLY


def test_service_proxy_path_names_namespace_service_and_port() -> None:
    assert (
        service_proxy_path("kyb-staging", "kyb-platform", 80)
        == "/api/v1/namespaces/kyb-staging/services/kyb-platform:80/proxy"
    )
    assert service_proxy_path("ns", "web", "http").endswith("/services/web:http/proxy")
    assert service_proxy_path("ns", "web", 443, "https").endswith("/services/https:web:443/proxy")


def test_cluster_dns_url() -> None:
    assert (
        cluster_dns_url("kyb-staging", "kyb-platform", 80)
        == "http://kyb-platform.kyb-staging.svc:80"
    )


@pytest.mark.parametrize(
    ("args", "fix"),
    [
        (("Kyb", "web", 80), "namespace 'Kyb' is not a DNS-1123 label"),
        (("ns", "1web", 80), "service '1web' is not a DNS-1035 label"),
        (("ns", "web/../x", 80), "service 'web/../x'"),
        (("ns", "web", 0), "must be a number 1-65535 or a port name"),
        (("ns", "web", 70000), "must be a number 1-65535"),
        (("ns", "web", "a:b"), "port name like http"),
        (("ns", "web", True), "must be a number"),
    ],
)
def test_bad_service_proxy_input_says_what_to_fix(args: tuple, fix: str) -> None:
    with pytest.raises(ConfigError, match=fix.replace("(", r"\(").replace(".", r"\.")):
        service_proxy_path(*args)


def test_bad_scheme_and_named_port_for_dns() -> None:
    with pytest.raises(ConfigError, match="scheme 'ftp' must be http or https"):
        service_proxy_path("ns", "web", 80, "ftp")
    with pytest.raises(ConfigError, match="needs the Service's port number, not 'http'"):
        cluster_dns_url("ns", "web", "http")


def _spec(strategy: dict) -> ReleaseSpec:
    return ReleaseSpec.model_validate(
        {
            "app": "web",
            "namespace": "ns",
            "image": "127.0.0.1:5001/web@sha256:" + "a" * 64,
            "container": "web",
            "labels": {"app": "web"},
            "strategy": strategy,
        }
    )


def test_served_by_is_the_stable_version_s_service() -> None:
    assert served_by(_spec({"rolling": {}})) == "web"
    assert served_by(_spec({"canary": {"steps": []}})) == "web"
    assert served_by(_spec({"canary": {"stableService": "web-stable"}})) == "web-stable"
    assert served_by(_spec({"blueGreen": {"activeService": "web-active"}})) == "web-active"


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1", True),
        ("127.64.3.9", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("localhost.", True),
        ("128.0.0.1", False),
        ("10.0.0.1", False),
        ("::1", False),
        ("example.com", False),
        ("127.0.0.1.nip.io", False),
        ("kyb-platform.kyb-staging.svc", False),
        ("", False),
    ],
)
def test_loopback_allowlist(host: str, allowed: bool) -> None:
    assert EgressAllowlist.parse(LOOPBACK_ONLY).allows(host) is allowed


def test_unset_allowlist_is_open() -> None:
    for text in (None, "", "  "):
        allow = EgressAllowlist.parse(text)
        assert allow.open and allow.describe() == "(open)"
        assert allow.allows("example.com") and allow.allows("10.0.0.1") and allow.allows("::1")


def test_networks_names_and_domains() -> None:
    allow = EgressAllowlist.parse("10.0.0.0/8 fd00::/8, kyb.example.com,.svc.cluster.local *.corp")
    assert allow.allows("10.1.2.3") and allow.allows("[fd00::1]") and not allow.allows("11.0.0.1")
    assert allow.allows("kyb.example.com") and not allow.allows("www.example.com")
    assert allow.allows("web.ns.svc.cluster.local") and not allow.allows("svc.cluster.local.evil")
    assert allow.allows("a.corp") and not allow.allows("corp")
    assert allow.describe() == "10.0.0.0/8,fd00::/8,kyb.example.com,.svc.cluster.local,.corp"


@pytest.mark.parametrize("entry", ["http://x", "a b/c", "10.0.0.0/33", "-bad-", "*."])
def test_bad_allowlist_entry_names_the_setting(entry: str) -> None:
    with pytest.raises(ConfigError, match="KYB_EGRESS_ALLOW entry"):
        EgressAllowlist.parse(entry)


def test_require_says_what_to_fix() -> None:
    with pytest.raises(ConfigError, match=r"host 10\.0\.0\.7 is not in KYB_EGRESS_ALLOW \(127"):
        EgressAllowlist.parse(LOOPBACK_ONLY).require("10.0.0.7", "checks of http://10.0.0.7")
    EgressAllowlist.parse(LOOPBACK_ONLY).require("127.0.0.1", "checks")


def test_access_modes_are_the_documented_strings() -> None:
    assert [m.value for m in CheckAccess] == ["service-proxy", "url", "cluster-dns"]


def test_apiserver_refusal_is_told_apart_from_the_service_s_answer() -> None:
    status = '{"kind":"Status","apiVersion":"v1","status":"Failure","message":"no endpoints\\n x"}'
    told = apiserver_refusal(503, status)
    assert told == "the apiserver answered HTTP 503 itself: no endpoints x"
    assert apiserver_refusal(503, '{"status": "unhealthy", "checks": {}}') is None  # the Service
    assert apiserver_refusal(200, "ok") is None
    assert apiserver_refusal(404, '{"kind": "Status", "apiVersion": "v2"}') is None
