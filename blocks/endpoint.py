"""Where checks reach a released Service: a base URL, and an HTTP client that can call it.

`ServiceEndpoint.service_proxy` goes through the apiserver's service proxy with the cluster block's
credentials and TLS (taken from the kubernetes client's configuration, as every other cluster call
is made); `from_url` calls a URL as given; `cluster_dns` calls the Service's in-cluster name.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

import httpx

from blocks.cluster import KubernetesCluster
from core.delivery.reach import CheckAccess, cluster_dns_url, service_proxy_path
from core.errors import ConfigError

_CLEAN = "a base URL http(s)://host[:port][/path], without user:password@, query or fragment"


def base_url(value: str, field_name: str = "the check URL") -> str:
    """`value` checked as a base URL for checks, without a trailing slash.

    Raises:
        ConfigError: not an http(s) URL with a host, or it carries credentials, a query or a
            fragment (the message never repeats the URL, which might hold a password).
    """
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, TypeError):
        raise ConfigError(f"{field_name} is not a URL: give {_CLEAN}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(f"{field_name} must be {_CLEAN}, not {url.scheme or 'no'} scheme")
    if url.userinfo or url.query or url.fragment:
        raise ConfigError(f"{field_name} must be {_CLEAN}: put credentials in request headers")
    return str(url).rstrip("/")


@dataclass(frozen=True)
class ServiceEndpoint:
    """A Service's base URL for checks (no secret in it) and how to open a client for it."""

    url: str
    access: CheckAccess = CheckAccess.URL
    cluster: KubernetesCluster | None = field(default=None, repr=False)

    @classmethod
    def from_url(cls, url: str) -> ServiceEndpoint:
        """Checks call `url` (+ the request's path) directly.

        Raises:
            ConfigError: the URL is not a clean http(s) base URL.
        """
        return cls(base_url(url))

    @classmethod
    def service_proxy(
        cls, cluster: KubernetesCluster, namespace: str, service: str, port: int | str
    ) -> ServiceEndpoint:
        """Checks go through the apiserver's proxy of `service`'s `port`, as the block's user.

        The user needs `get` on `services/proxy` in the namespace (other methods: their verbs).

        Raises:
            ConfigError: a name or the port is not valid, or the block has no usable server.
        """
        path = service_proxy_path(namespace, service, port)
        return cls(cluster.server() + path, CheckAccess.SERVICE_PROXY, cluster)

    @classmethod
    def cluster_dns(cls, namespace: str, service: str, port: int) -> ServiceEndpoint:
        """Checks call `http://service.namespace.svc:port` (from a pod of the same cluster).

        Raises:
            ConfigError: a name or the port is not valid.
        """
        return cls(cluster_dns_url(namespace, service, port), CheckAccess.CLUSTER_DNS)

    @property
    def host(self) -> str:
        """The host a check dials (the apiserver's, for the service proxy)."""
        return httpx.URL(self.url).host

    def client(self, trust_env: bool = False) -> httpx.Client:
        """A new client for this endpoint's requests (close it, or use it with `with`).

        Args:
            trust_env: honour HTTP(S)_PROXY and the like from the environment.

        Raises:
            ConfigError: the cluster block's credentials or CA cannot be loaded.
        """
        if self.cluster is None:
            return httpx.Client(trust_env=trust_env, follow_redirects=False)
        with self.cluster.api_client() as api:
            conf = api.configuration
            headers = {
                str(auth["key"]): str(auth["value"])
                for auth in conf.auth_settings().values()
                if auth.get("in") == "header" and auth.get("value")
            }
            verify = _tls(conf.verify_ssl, conf.ssl_ca_cert, conf.cert_file, conf.key_file)
            proxy = conf.proxy or None
        return httpx.Client(
            headers=headers,
            verify=verify,
            proxy=proxy,
            trust_env=trust_env and proxy is None,
            follow_redirects=False,
        )

    def conflicts(self, header_names: list[str]) -> list[str]:
        """The request headers this endpoint cannot carry to the Service.

        The apiserver removes the `Authorization` header it authenticated the request with, so a
        smoke request's own Authorization never reaches the Service through the proxy.
        """
        if self.access is not CheckAccess.SERVICE_PROXY:
            return []
        return [h for h in header_names if h.lower() == "authorization"]


def _tls(
    verify: bool, ca_file: str | None, cert_file: str | None, key_file: str | None
) -> ssl.SSLContext | bool:
    """The apiserver's TLS settings as httpx takes them (files written by the kube client)."""
    if not verify and not cert_file:
        return False
    try:
        context = ssl.create_default_context(cafile=ca_file or None)
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if cert_file:
            context.load_cert_chain(cert_file, key_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot load the cluster block's TLS files for the service proxy: "
            f"{type(exc).__name__}; check certificate-authority-data and the client certificate"
        ) from None
    return context
