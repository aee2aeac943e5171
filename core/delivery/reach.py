"""How checks reach a released Service: access modes, their URLs, and the egress allowlist.

Three ways, chosen by the environment (`check_access`):
- `service-proxy`: through the apiserver, `/api/v1/namespaces/NS/services/NAME:PORT/proxy/PATH`,
  with the cluster block's credentials (works from anywhere the apiserver is reachable);
- `url`: a base URL the user gives (a public address, an ingress, a port-forward);
- `cluster-dns`: `http://NAME.NS.svc:PORT`, when the pipeline itself runs in the cluster.

The egress allowlist (setting `KYB_EGRESS_ALLOW`) is open when unset: product code reaches whatever
the user configures. A platform that must keep traffic somewhere sets it to CIDRs and host
names; then a check to any other host is refused before it is sent.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from enum import StrEnum

from core.errors import ConfigError
from core.names import is_dns_1035_label, is_dns_label, label_error
from core.release.spec import ReleaseSpec

EGRESS_SETTING = "KYB_EGRESS_ALLOW"


class CheckAccess(StrEnum):
    """How checks reach a released Service."""

    SERVICE_PROXY = "service-proxy"
    URL = "url"
    CLUSTER_DNS = "cluster-dns"


def _port(port: int | str) -> str:
    if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536:
        return str(port)
    if isinstance(port, str) and is_dns_label(port) and len(port) <= 15:  # an IANA port name
        return port
    raise ConfigError(f"service port {port!r} must be a number 1-65535 or a port name like http")


def _names(namespace: str, service: str) -> None:
    if not is_dns_label(namespace):
        raise ConfigError(f"namespace {label_error(namespace)}")
    if not is_dns_1035_label(service):
        raise ConfigError(f"service {label_error(service, 'DNS-1035 label')}")


def service_proxy_path(namespace: str, service: str, port: int | str, scheme: str = "") -> str:
    """The apiserver path that proxies to a Service's port, without a trailing slash.

    Args:
        namespace: the Service's namespace.
        service: the Service's name.
        port: the Service's port number or name (the apiserver maps it to the endpoints' port).
        scheme: "https" when the pods serve TLS; "" or "http" for plain HTTP.

    Raises:
        ConfigError: a name, the port or the scheme is not valid.
    """
    _names(namespace, service)
    if scheme not in ("", "http", "https"):
        raise ConfigError(f"scheme {scheme!r} must be http or https")
    target = f"{service}:{_port(port)}"
    if scheme == "https":
        target = f"https:{target}"
    return f"/api/v1/namespaces/{namespace}/services/{target}/proxy"


def cluster_dns_url(namespace: str, service: str, port: int | str, scheme: str = "http") -> str:
    """`http://NAME.NS.svc:PORT`: the Service's address from a pod of the same cluster.

    Raises:
        ConfigError: a name, the port or the scheme is not valid (a named port cannot be dialled).
    """
    _names(namespace, service)
    if scheme not in ("http", "https"):
        raise ConfigError(f"scheme {scheme!r} must be http or https")
    if not isinstance(port, int) or isinstance(port, bool):
        raise ConfigError(f"cluster-dns needs the Service's port number, not {port!r}")
    return f"{scheme}://{service}.{namespace}.svc:{_port(port)}"


def apiserver_refusal(status_code: int, body_text: str) -> str | None:
    """The apiserver's own answer to a proxied request, in one line; None if the Service answered.

    The apiserver answers for itself with a v1 `Status` object: 403 when the user may not use
    `services/proxy`, 404 for a missing Service, 503 "no endpoints available" when no Ready pod
    backs the Service. Anything else came from the Service, through the proxy.
    """
    try:
        body = json.loads(body_text)
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("kind") != "Status" or body.get("apiVersion") != "v1":
        return None
    message = " ".join(str(body.get("message") or body.get("reason") or "").split())[:200]
    return f"the apiserver answered HTTP {status_code} itself: {message}"


def served_by(spec: ReleaseSpec) -> str:
    """The Service that serves the stable version: blue-green's active one, else the app's."""
    if spec.strategy.blue_green is not None:
        return spec.strategy.blue_green.active_service
    canary = spec.strategy.canary
    return (canary.stable_service if canary else None) or spec.app


def _network(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None


@dataclass(frozen=True)
class EgressAllowlist:
    """Where checks may go: networks and host names; empty means anywhere (the default)."""

    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    hosts: tuple[str, ...] = ()  # exact names, or ".example.com" for the domain's subdomains

    @classmethod
    def parse(cls, text: str | None) -> EgressAllowlist:
        """Read "127.0.0.0/8,::1,localhost,.svc.cluster.local" (commas or spaces between).

        Raises:
            ConfigError: an entry is neither a CIDR, an IP address nor a host name.
        """
        networks, hosts = [], []
        for entry in (text or "").replace(",", " ").split():
            net = _network(entry)
            if net is not None:
                networks.append(net)
                continue
            name = entry.lower().rstrip(".")
            bare = name[2:] if name.startswith("*.") else name.lstrip(".")
            if not bare or not all(is_dns_label(part) for part in bare.split(".")):
                raise ConfigError(
                    f"{EGRESS_SETTING} entry {entry!r} is not a CIDR, an IP address or a host "
                    "name: e.g. 127.0.0.0/8,localhost,.example.com"
                )
            hosts.append(bare if bare == name else f".{bare}")
        return cls(tuple(networks), tuple(hosts))

    @property
    def open(self) -> bool:
        """True when nothing is listed: every host is allowed."""
        return not self.networks and not self.hosts

    def allows(self, host: str) -> bool:
        """Whether a check may dial `host` (an IP address or a name, as in the URL)."""
        if self.open:
            return True
        name = host.strip("[]").lower().rstrip(".")
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return any(name == h or (h.startswith(".") and name.endswith(h)) for h in self.hosts)
        return any(address in net for net in self.networks)

    def describe(self) -> str:
        """The list as the setting spells it."""
        return ",".join([*(str(n) for n in self.networks), *self.hosts]) or "(open)"

    def require(self, host: str, what: str) -> None:
        """Raise ConfigError unless `host` is allowed; `what` names the URL's use.

        Raises:
            ConfigError: the host is not on the list (nothing was sent).
        """
        if not self.allows(host):
            raise ConfigError(
                f"{what}: host {host} is not in {EGRESS_SETTING} ({self.describe()}); "
                f"add it there, or point the check at an allowed address"
            )
