"""Traefik v3 on 127.0.0.1: the platform's entry point, routing by the Gateway API to pod IPs.

Traefik runs out of cluster against the main cluster's apiserver (kubernetesGateway provider, as
ServiceAccount kyb-traefik/traefik with the RBAC of sandbox/traefik/rbac.yaml and a bound token
in a 0600 file) and serves routed traffic on http://127.0.0.1:38080 (KYB_TRAEFIK_PORT, entry
point `web`); /ping and its read-only API are on 127.0.0.1:38081 (KYB_TRAEFIK_ADMIN_PORT).

One shared Gateway, not one per environment: GatewayClass `traefik` and Gateway kyb-traefik/kyb,
whose listener `web` (the entry point's port) takes HTTPRoutes from every namespace. The platform
owns the Gateway (Gateway API's split: the platform team runs the gateway, teams attach routes),
so an environment namespace, or a test's, needs nothing but its HTTPRoute: parentRefs
`manifests.parent_ref()`, hostnames of its own (e.g. `<app>.<namespace>`), backendRefs with
weights (the canary's stable and canary Services). Traefik splits requests by weight (a smooth
weighted round robin: exact shares, no sampling noise; weight 0 gets nothing) and within a Service
over the ready addresses of its EndpointSlices: the pods' IPs, dialled directly (no ClusterIP).
A route change is served within about a second (providersThrottleDuration 200 ms); a route's
status (Accepted, ResolvedRefs) is written by Traefik, so a caller can see it was taken.

The Gateway API CRDs are the standard channel of the `sigs.k8s.io/gateway-api` version Traefik's
go.mod requires (read from the wrapper module), applied to both clusters: restores of HTTPRoutes
into the DR cluster need them. Only the main cluster gets a Traefik.

The network rule: every address Traefik is given (entry points, apiserver) must lie in
127.0.0.0/8, or `up` refuses. Traefik dials the backends it reads from EndpointSlices; it runs
with HTTP(S)_PROXY=NOWHERE (127.0.0.1:0) and Go never proxies a loopback address, so a backend
outside loopback is refused (502) before any packet leaves the machine.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from sandbox import sa_token
from sandbox.components import Status
from sandbox.components.cluster import Cluster
from sandbox.crds import wait_established
from sandbox.errors import PlatformError
from sandbox.files import write_file
from sandbox.install import go_build
from sandbox.procs import Daemon, run, wait_until
from sandbox.settings import HOST, LOOPBACK_ONLY, TRAEFIK_VERSION, Settings
from sandbox.traefik import manifests

MODULE_DIR = Path(manifests.__file__).parent  # the wrapper go.mod that builds Traefik
PACKAGE = "github.com/traefik/traefik/v3/cmd/traefik"
LDFLAGS = f"-X github.com/traefik/traefik/v3/pkg/version.Version=v{TRAEFIK_VERSION}"
GATEWAY_API = "sigs.k8s.io/gateway-api"  # the CRDs' module, at the version Traefik requires
FIELD_MANAGER = "kyb-sandbox"
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
# Where Traefik's Go transport sends every backend outside loopback: port 0, on which nothing can
# ever listen, so such a request is refused on the spot (Traefik answers 502).
NOWHERE = f"http://{HOST}:0"


def refuse_outside_loopback(what: str, host: str) -> None:
    """Raise unless `host` is in the platform's loopback allowlist (settings.LOOPBACK_ONLY).

    Raises:
        PlatformError: the address leaves 127.0.0.0/8.
    """
    allowed = LOOPBACK_ONLY.split(",")
    try:
        ip = ipaddress.ip_address(host)
        ok = any(ip in ipaddress.ip_network(net) for net in allowed if net[0].isdigit())
    except ValueError:
        ok = host in allowed
    if not ok:
        raise PlatformError(
            "traefik", f"{what} {host!r} is outside {LOOPBACK_ONLY}", "use a 127.0.0.0/8 address"
        )


def apply(api: Any, objects: list[dict[str, Any]]) -> None:
    """Server-side apply objects in order (idempotent), with the sandbox's field manager."""
    from kubernetes.dynamic import DynamicClient

    dyn = DynamicClient(api)
    for obj in objects:
        resource = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        dyn.server_side_apply(
            resource,
            body=obj,
            namespace=obj["metadata"].get("namespace"),
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
        )


def gateway_api_crds() -> list[dict[str, Any]]:
    """The standard-channel Gateway API CRDs of the version Traefik's go.mod requires."""
    out = run(
        ["go", "mod", "download", "-json", GATEWAY_API],
        "traefik",
        f"check that Go's module proxy serves {GATEWAY_API}",
        cwd=MODULE_DIR,
    )
    folder = Path(json.loads(out)["Dir"]) / "config" / "crd" / "standard"
    return [yaml.safe_load(p.read_text()) for p in sorted(folder.glob("*.yaml"))]


class Traefik:
    """`traefik` with the kubernetesGateway provider, for the main cluster."""

    name = "traefik"

    def __init__(self, settings: Settings, cluster: Cluster, dr_cluster: Cluster) -> None:
        self.settings = settings
        self.cluster = cluster
        self.dr_cluster = dr_cluster
        self.port = settings.ports.traefik
        self.admin_port = settings.ports.traefik_admin
        self.url = f"http://{HOST}:{self.port}"
        self.api_url = f"http://{HOST}:{self.admin_port}"
        self.state = settings.dir(self.name)
        self.token_file = self.state / "token"
        self.ca_file = self.state / "apiserver-ca.crt"  # copied from the kubeconfig's CA
        self.config_file = self.state / "traefik.yml"
        self.daemon = Daemon(self.name, self.state)
        self.build_seconds: dict[str, float] = {}

    @property
    def program(self) -> Path:
        """The cached traefik binary."""
        return self.settings.traefik_bin / "traefik"

    def install(self) -> None:
        """Build traefik into the cache unless it is there already."""
        if not self.program.is_file():
            out = self.program.parent
            secs = go_build(self.name, MODULE_DIR, [PACKAGE], out, LDFLAGS, ("traefik",))
            if secs:
                self.build_seconds[f"traefik v{TRAEFIK_VERSION}"] = secs

    # ---- cluster objects -----------------------------------------------------------------------
    def _api(self, cluster: Cluster) -> Any:
        from kubernetes import config

        return config.new_client_from_config(str(cluster.kubeconfig))

    def _install_crds(self, api: Any, crds: list[dict[str, Any]]) -> None:
        apply(api, crds)
        wait_established(api, [crd["metadata"]["name"] for crd in crds], "the Gateway API CRDs")

    def ensure_objects(self) -> None:
        """Gateway API CRDs and GatewayClass in both clusters; RBAC and the Gateway in the main."""
        crds = gateway_api_crds()
        for cluster in (self.cluster, self.dr_cluster):
            if not cluster.kubeconfig.exists():
                raise PlatformError(self.name, f"{cluster.cluster.name} is not up", "sandbox up")
            with self._api(cluster) as api:
                self._install_crds(api, crds)
                apply(api, [manifests.gateway_class()])
        with self._api(self.cluster) as api:
            apply(api, [*manifests.rbac(), manifests.gateway(self.port)])

    def ensure_token(self) -> None:
        """Mint a bound token for Traefik's ServiceAccount when missing, half-expired or refused."""
        sa_token.ensure_token(
            self.cluster.kubeconfig,
            self.token_file,
            manifests.NAMESPACE,
            manifests.SERVICE_ACCOUNT,
            "/apis/gateway.networking.k8s.io/v1/gatewayclasses?limit=1",
        )

    # ---- run -----------------------------------------------------------------------------------
    def _apiserver(self) -> tuple[str, bytes]:
        """The main cluster's apiserver URL and CA certificate (PEM), from its kubeconfig."""
        return sa_token.apiserver(self.cluster.kubeconfig)

    def _config(self) -> str:
        host, ca = self._apiserver()
        refuse_outside_loopback("the apiserver", urlsplit(host).hostname or "")
        write_file(self.ca_file, ca, 0o644)
        web, admin = f"{HOST}:{self.port}", f"{HOST}:{self.admin_port}"
        for what, address in (("entry point web", web), ("entry point traefik", admin)):
            refuse_outside_loopback(what, address.rsplit(":", 1)[0])
        static = manifests.static_config(web, admin, host, self.token_file, self.ca_file)
        return yaml.safe_dump(static, sort_keys=False)

    def _env(self) -> dict[str, str]:
        """Proxy every backend outside loopback to NOWHERE (Go never proxies a loopback one)."""
        return {**dict.fromkeys(PROXY_VARS, NOWHERE), "NO_PROXY": "", "no_proxy": ""}

    def _answers(self) -> bool:
        try:
            resp = httpx.get(f"{self.api_url}/ping", timeout=2, trust_env=False)
        except httpx.HTTPError:
            return False
        return resp.status_code == 200

    def gateway_programmed(self) -> bool:
        """Traefik accepted the shared Gateway (its Programmed condition, current generation)."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            with self._api(self.cluster) as api:
                gw = client.CustomObjectsApi(api).get_namespaced_custom_object(
                    "gateway.networking.k8s.io",
                    "v1",
                    manifests.NAMESPACE,
                    "gateways",
                    manifests.GATEWAY,
                    _request_timeout=5,
                )
        except (ApiException, OSError):
            return False
        generation = gw["metadata"].get("generation")
        return any(
            c["type"] == "Programmed"
            and c["status"] == "True"
            and c.get("observedGeneration") == generation
            for c in (gw.get("status") or {}).get("conditions") or []
        )

    def up(self) -> None:
        """Apply the objects, start Traefik unless ours runs as configured, wait for its Gateway."""
        self.ensure_objects()
        self.ensure_token()
        text = self._config()
        digest = hashlib.sha256(
            text.encode()
            + self.token_file.read_bytes()
            + self.ca_file.read_bytes()
            + json.dumps(self._env()).encode()
        ).hexdigest()
        stamp = self.state / "traefik.sha256"
        if self.daemon.pid() is not None and (not stamp.exists() or stamp.read_text() != digest):
            self.daemon.stop()  # a new token, port or cluster: a new process serves it
        write_file(self.config_file, text, 0o644)
        stamp.write_text(digest)
        self.daemon.ensure(
            lambda: [str(self.program), f"--configFile={self.config_file}"],
            self._answers,
            f"Traefik ping on {self.api_url}/ping",
            self.port,
            "stop that process or set KYB_TRAEFIK_PORT (and KYB_TRAEFIK_ADMIN_PORT) to free ports",
            env=self._env(),
        )
        wait_until(self.gateway_programmed, 60, "Traefik to program Gateway kyb", self.daemon)

    def down(self) -> None:
        """Stop Traefik if we started it (its cluster objects stay)."""
        self.daemon.stop()

    def status(self) -> Status:
        """Running or stopped, with the entry point's URL."""
        running = bool(self.daemon.pid()) and self._answers()
        detail = f"v{TRAEFIK_VERSION}, Gateway {manifests.NAMESPACE}/{manifests.GATEWAY}"
        return Status(self.name, "running" if running else "stopped", self.url, detail)

    def env(self) -> dict[str, str]:
        """The entry point, the admin API and the shared Gateway (namespace/name)."""
        return {
            "KYB_TRAEFIK_URL": self.url,
            "KYB_TRAEFIK_API_URL": self.api_url,
            "KYB_TRAEFIK_GATEWAY": f"{manifests.NAMESPACE}/{manifests.GATEWAY}",
        }
