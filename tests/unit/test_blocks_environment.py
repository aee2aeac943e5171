"""Environment block and ServiceEndpoint: validation, defaults, how checks reach a Service.

The service-proxy client is checked against a StubServer standing in for the apiserver (on
127.0.0.1): the URL it calls and the credentials it sends are what the kubeconfig says.
"""

from __future__ import annotations

import base64
import datetime
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prefect.blocks.core import Block
from pydantic import ValidationError

from blocks import Environment, KubernetesCluster, PrometheusServer
from blocks.endpoint import ServiceEndpoint
from core.delivery.reach import CheckAccess
from core.errors import ConfigError
from tests.unit.test_blocks import TOKEN, _OfflineSuite, make_kubeconfig, serving


class TestEnvironmentStandard(_OfflineSuite):
    @pytest.fixture
    def block(self) -> type[Block]:
        return Environment


def cluster(server: str = "https://127.0.0.1:1", **kw: Any) -> KubernetesCluster:
    return KubernetesCluster(kubeconfig=make_kubeconfig(server, **kw), namespace="kyb-staging")


def env(**kwargs: Any) -> Environment:
    return Environment(
        **{"name": "staging", "cluster": cluster(), "namespace": "kyb-staging", **kwargs}
    )


def test_defaults_reach_the_app_s_service_through_the_apiserver() -> None:
    staging = env()
    assert staging.check_access == CheckAccess.SERVICE_PROXY and staging.check_port == 80
    assert staging.analysis_templates == ["error-rate"] and not staging.approval_required
    assert staging.strategy_for("web") is None
    assert staging.overlay_dir("web", Path("/apps/web")) == Path("/apps/web/deploy/staging")
    endpoint = staging.endpoint("web")
    assert endpoint.url == "https://127.0.0.1:1/api/v1/namespaces/kyb-staging/services/web:80/proxy"
    assert endpoint.access == CheckAccess.SERVICE_PROXY and endpoint.cluster is staging.cluster
    assert TOKEN not in repr(endpoint) and TOKEN not in repr(staging)


def test_app_placeholder_in_overlay_and_strategy() -> None:
    production = env(
        name="production",
        namespace="kyb-production",
        overlay="apps/{app}/deploy/production",
        strategy={"blueGreen": {"activeService": "{app}", "previewService": "{app}-preview"}},
        approval_required=True,
    )
    assert production.overlay_dir("kyb") == Path("apps/kyb/deploy/production")
    assert production.strategy_for("kyb") == {
        "blueGreen": {"activeService": "kyb", "previewService": "kyb-preview"}
    }
    assert production.strategy == {
        "blueGreen": {"activeService": "{app}", "previewService": "{app}-preview"}
    }  # the block itself is never changed


def test_url_and_cluster_dns_access() -> None:
    public = env(check_access="url", check_url="https://kyb.example.com/staging/")
    assert public.endpoint("web") == ServiceEndpoint("https://kyb.example.com/staging")
    inside = env(check_access="cluster-dns", check_port=8080)
    assert inside.endpoint("web").url == "http://web.kyb-staging.svc:8080"
    assert inside.endpoint("web").access == CheckAccess.CLUSTER_DNS


@pytest.mark.parametrize(
    ("kwargs", "fix"),
    [
        ({"name": "Staging"}, "'Staging' is not a DNS-1123 label"),
        ({"namespace": "kyb_staging"}, "'kyb_staging' is not a DNS-1123 label"),
        ({"overlay": "apps/{name}/deploy"}, "only {app} may stand in braces"),
        ({"strategy": {"blueGreen": {}}}, "strategy blueGreen.activeService: Field required"),
        ({"strategy": {"linear": {}}}, "unknown strategy 'linear'"),
        ({"strategy": {"rolling": {}, "canary": {}}}, "exactly one of rolling"),
        ({"analysis_templates": ["Error Rate"]}, "'Error Rate' is not a DNS-1123 label"),
        ({"analysis_templates": ["a", "a"]}, "name each template once"),
        ({"check_access": "url"}, "check_access is url: set check_url"),
        ({"check_url": "https://x.example.com"}, "check_url is only used with check_access=url"),
        ({"check_access": "url", "check_url": "ftp://x"}, "check_url must be a base URL"),
        ({"check_access": "url", "check_url": "https://u:pw@x.example.com"}, "credentials"),
        ({"check_access": "url", "check_url": "https://x.example.com/?a=1"}, "query"),
        ({"check_access": "pod-proxy"}, "check_access"),
        ({"check_port": 0}, "check_port"),
    ],
)
def test_bad_settings_say_what_to_fix(kwargs: dict[str, Any], fix: str) -> None:
    with pytest.raises(ValidationError) as caught:
        env(**kwargs)
    assert fix in str(caught.value)
    assert "pw" not in str(caught.value) and TOKEN not in str(caught.value)


def test_no_overlay_and_no_app_folder() -> None:
    with pytest.raises(ConfigError, match="sets no overlay: set its overlay"):
        env().overlay_dir("web")


def test_prometheus_is_optional_and_nested() -> None:
    staging = env(prometheus=PrometheusServer(url="http://127.0.0.1:9090", bearer_token="t0k"))
    assert staging.prometheus is not None and "t0k" not in repr(staging)


def test_service_proxy_sends_the_cluster_block_s_token_to_the_proxy_path() -> None:
    with serving() as stub:
        stub.route("/api/v1/namespaces/kyb-staging/services/web:80/proxy/health", 200, {"ok": 1})
        staging = env(cluster=cluster(f"http://{stub.address}"))
        endpoint = staging.endpoint("web")
        with endpoint.client() as http:
            answer = http.get(endpoint.url + "/health?x=1", timeout=5)
    assert answer.status_code == 200
    [sent] = stub.requests
    assert sent["path"] == "/api/v1/namespaces/kyb-staging/services/web:80/proxy/health?x=1"
    headers = {k.lower(): v for k, v in sent["headers"].items()}
    assert headers["authorization"] == f"Bearer {TOKEN}"


def test_a_plain_url_sends_no_cluster_credentials() -> None:
    with serving() as stub:
        stub.route("/health", 200, {"ok": 1})
        endpoint = ServiceEndpoint.from_url(f"http://{stub.address}")
        with endpoint.client() as http:
            assert http.get(endpoint.url + "/health", timeout=5).status_code == 200
    assert "authorization" not in {k.lower() for k in stub.requests[0]["headers"]}


def _ca() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def _tls_of(block: KubernetesCluster) -> Any:
    endpoint = ServiceEndpoint.service_proxy(block, "ns", "web", 80)
    with endpoint.client() as http:
        return http._transport._pool._ssl_context  # what httpx will verify the apiserver with


def test_service_proxy_trusts_the_kubeconfig_s_ca_or_skips_as_it_says() -> None:
    ca = base64.b64encode(_ca()).decode()
    data = yaml.safe_load(make_kubeconfig())
    data["clusters"][0]["cluster"]["certificate-authority-data"] = ca
    context = _tls_of(KubernetesCluster(kubeconfig=yaml.safe_dump(data)))
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert any(c["subject"] == ((("commonName", "test-ca"),),) for c in context.get_ca_certs())
    data["clusters"][0]["cluster"] = {
        "server": "https://127.0.0.1:1",
        "insecure-skip-tls-verify": True,
    }
    context = _tls_of(KubernetesCluster(kubeconfig=yaml.safe_dump(data)))
    assert context.verify_mode == ssl.CERT_NONE


def test_authorization_header_cannot_pass_the_service_proxy() -> None:
    assert env().endpoint("web").conflicts(["authorization", "X-Trace"]) == ["authorization"]
    assert ServiceEndpoint.from_url("https://x.example.com").conflicts(["Authorization"]) == []


@pytest.mark.parametrize(
    "url", ["127.0.0.1:8080", "ftp://x", "http://", "https://u:pw@h", "http://h/#f", "x y"]
)
def test_bad_check_urls_never_repeat_a_password(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ServiceEndpoint.from_url(url)
    assert "pw" not in str(caught.value)


def test_httpx_client_types() -> None:
    assert isinstance(ServiceEndpoint.from_url("http://127.0.0.1:1").client(), httpx.Client)


def test_an_environment_s_engine_is_its_releases_engine_unless_a_spec_says_otherwise() -> None:
    from core.release.spec import ReleaseSpec
    from flows.environments import check_spec

    base = {
        "app": "web",
        "namespace": "kyb-staging",
        "image": "127.0.0.1:5001/web@sha256:" + "a" * 64,
        "strategy": {"canary": {"steps": [{"setWeight": 50}]}},
    }
    argo = env(engine="argo")
    assert env().engine == "pipeline"
    assert check_spec(argo, ReleaseSpec.model_validate(base), "", "").engine == "argo"
    said = ReleaseSpec.model_validate({**base, "engine": "pipeline"})
    with pytest.raises(ConfigError, match=r"spec\.engine='pipeline' conflicts with environment"):
        check_spec(argo, said, "", "")
    with pytest.raises(ValidationError, match="engine"):
        env(engine="flagger")
