"""Traefik, the platform's entry point: Gateway API weights split real traffic between pod IPs.

The backends are real HTTP servers this test runs on two pod-range addresses (127.32.250.1 and
127.32.250.2); the Services' IPv4 EndpointSlices name them, as the EndpointSlice controller does
for pods (the platform's kube-apiserver accepts loopback endpoint addresses), so Traefik dials the
pod IPs itself.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from kubernetes import client

from sandbox.components.traefik import NOWHERE, Traefik
from sandbox.platform import Platform
from sandbox.rbac import cluster_as
from sandbox.settings import Settings
from sandbox.traefik import manifests
from tests.integration.rbac import can_i
from tests.integration.test_velero_platform import _listening

GATEWAY_GROUP, VERSION = "gateway.networking.k8s.io", "v1"
REQUESTS = 2000
POD_IPS = {"stable": "127.32.250.1", "canary": "127.32.250.2"}
IMAGE = "127.0.0.1:5001/kyb-platform@sha256:" + "1" * 64  # never pulled: the pods are simulated


class _Backend(ThreadingHTTPServer):
    """One pod's HTTP server: answers its track's name and counts what it served."""

    def __init__(self, track: str, address: str, port: int = 0) -> None:
        self.track = track
        self.served = 0
        self.lock = threading.Lock()
        super().__init__((address, port), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: Traefik reuses its connections
    disable_nagle_algorithm = True  # headers and body go out at once, not 40 ms apart

    def do_GET(self) -> None:
        server = self.server
        assert isinstance(server, _Backend)
        with server.lock:
            server.served += 1
        body = server.track.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        return


@contextmanager
def _backends(ips: dict[str, str] = POD_IPS, port: int = 0) -> Iterator[dict[str, _Backend]]:
    """An HTTP server per track on its pod IP (port 0: a free one)."""
    servers = {track: _Backend(track, ip, port) for track, ip in ips.items()}
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers.values()]
    for t in threads:
        t.start()
    try:
        yield servers
    finally:
        for s in servers.values():
            s.shutdown()
            s.server_close()


def _service(namespace: str, name: str, address: str, port: int, kind: str = "IPv4") -> None:
    """A Service without selector and its one-endpoint EndpointSlice (addressType kind)."""
    core, discovery = client.CoreV1Api(), client.DiscoveryV1Api()
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": name},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": port}]},
        },
    )
    discovery.create_namespaced_endpoint_slice(
        namespace,
        {
            "metadata": {
                "name": name,
                "labels": {
                    "kubernetes.io/service-name": name,
                    "endpointslice.kubernetes.io/managed-by": "kyb-tests",
                },
            },
            "addressType": kind,
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        },
    )


def _route(namespace: str, weights: dict[str, int]) -> dict:
    return {
        "apiVersion": f"{GATEWAY_GROUP}/{VERSION}",
        "kind": "HTTPRoute",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "parentRefs": [manifests.parent_ref()],
            "hostnames": [f"web.{namespace}"],
            "rules": [
                {
                    "backendRefs": [
                        {"name": f"web-{track}", "port": 80, "weight": weight}
                        for track, weight in weights.items()
                    ]
                }
            ],
        },
    }


def _send(web: httpx.Client, count: int) -> Counter[str]:
    """`count` requests through the entry point: how many each track answered (or the status)."""
    seen: Counter[str] = Counter()
    for _ in range(count):
        resp = web.get("/")
        seen[resp.text if resp.status_code == 200 else str(resp.status_code)] += 1
    return seen


def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} within {timeout}s"
        time.sleep(0.1)  # bounded by the deadline: Traefik applies changes within ~0.2 s


@pytest.fixture
def web(platform: Platform, namespace: str) -> Iterator[httpx.Client]:
    """A client of Traefik's entry point that asks for this namespace's route by host name."""
    headers = {"Host": f"web.{namespace}"}
    with httpx.Client(base_url=platform.traefik.url, headers=headers, timeout=5) as c:
        yield c


def _accepted(custom: client.CustomObjectsApi, namespace: str) -> bool:
    route = custom.get_namespaced_custom_object(
        GATEWAY_GROUP, VERSION, namespace, "httproutes", "web"
    )
    parents = (route.get("status") or {}).get("parents") or []
    conds = {c["type"]: c["status"] for p in parents for c in p.get("conditions", [])}
    return conds.get("Accepted") == "True" and conds.get("ResolvedRefs") == "True"


def test_weights_split_real_traffic_between_pod_ips(kube, namespace, web) -> None:
    client.Configuration.set_default(kube.configuration)
    custom = client.CustomObjectsApi(kube)
    with _backends() as servers:
        for track, server in servers.items():
            _service(namespace, f"web-{track}", POD_IPS[track], server.server_address[1])
        route = _route(namespace, {"stable": 75, "canary": 25})
        custom.create_namespaced_custom_object(
            GATEWAY_GROUP, VERSION, namespace, "httproutes", route
        )
        _until(lambda: _send(web, 8).keys() == {"stable", "canary"}, 30, "both tracks answer")
        _until(lambda: _accepted(custom, namespace), 30, "Traefik accepts the route")

        before = {t: s.served for t, s in servers.items()}
        seen = _send(web, REQUESTS)
        served = {t: s.served - before[t] for t, s in servers.items()}
        assert seen == Counter(served), "every answer came from the pod IP that counted it"
        share = 100 * served["canary"] / REQUESTS
        print(f"canary share at weight 25: {share:.2f}% of {REQUESTS}")
        assert sum(served.values()) == REQUESTS and abs(share - 25) <= 3

        route["spec"]["rules"][0]["backendRefs"][0]["weight"] = 100
        route["spec"]["rules"][0]["backendRefs"][1]["weight"] = 0
        changed = time.monotonic()
        custom.patch_namespaced_custom_object(
            GATEWAY_GROUP, VERSION, namespace, "httproutes", "web", route
        )
        _until(lambda: _send(web, 20)["canary"] == 0, 15, "canary out of the route")
        print(f"no canary answer {time.monotonic() - changed:.2f}s after weight 0 was written")
        canary_before = servers["canary"].served
        assert _send(web, 500) == Counter(stable=500)
        assert servers["canary"].served == canary_before


def _pods(namespace: str) -> dict[str, str]:
    """One simulated pod per track (kwok: nothing runs in it); its pod IP once it is Ready."""
    core = client.CoreV1Api()
    for track in POD_IPS:
        labels = {"app": "web", "track": track}
        container = {
            "name": "app",
            "image": IMAGE,
            "ports": [{"name": "http", "containerPort": 8080}],
        }
        core.create_namespaced_pod(
            namespace,
            {
                "metadata": {"name": f"web-{track}", "labels": labels},
                "spec": {"containers": [container]},
            },
        )
        selector = {"app": "web", "track": track}
        port = {"name": "http", "port": 80, "targetPort": "http"}  # named: resolved per pod
        core.create_namespaced_service(
            namespace,
            {"metadata": {"name": f"web-{track}"}, "spec": {"selector": selector, "ports": [port]}},
        )
    ips: dict[str, str] = {}

    def ready() -> bool:
        for pod in core.list_namespaced_pod(namespace).items:
            conds = {c.type: c.status for c in pod.status.conditions or []}
            if conds.get("Ready") == "True" and pod.status.pod_ip:
                ips[pod.metadata.labels["track"]] = pod.status.pod_ip
        return len(ips) == len(POD_IPS)

    _until(ready, 60, "the pods to turn Ready with pod IPs")
    return ips


def test_a_selector_service_routes_to_its_pods_through_controller_made_slices(
    kube, namespace, web
) -> None:
    """The EndpointSlice controller publishes the pods' (loopback) IPs; Traefik dials them."""
    client.Configuration.set_default(kube.configuration)
    custom = client.CustomObjectsApi(kube)
    ips = _pods(namespace)
    assert all(ip.startswith("127.") for ip in ips.values()), ips
    with _backends(ips, port=8080) as servers:
        route = _route(namespace, {"stable": 50, "canary": 50})
        custom.create_namespaced_custom_object(
            GATEWAY_GROUP, VERSION, namespace, "httproutes", route
        )
        _until(lambda: _send(web, 8).keys() == {"stable", "canary"}, 30, "both pods answer")
        before = {t: s.served for t, s in servers.items()}
        assert _send(web, 200) == Counter(stable=100, canary=100)
        assert {t: s.served - before[t] for t, s in servers.items()} == {
            "stable": 100,
            "canary": 100,
        }


def test_traefik_acts_with_least_privilege(platform: Platform, namespace: str) -> None:
    from blocks import KubernetesCluster
    from sandbox.platform import BLOCK_NAME

    admin = KubernetesCluster.load(BLOCK_NAME)
    traefik = cluster_as(
        admin, manifests.SERVICE_ACCOUNT, namespace, account_namespace=manifests.NAMESPACE
    )
    for verb, resource, group in (
        ("watch", "httproutes", GATEWAY_GROUP),
        ("update", "httproutes/status", GATEWAY_GROUP),
        ("list", "endpointslices", "discovery.k8s.io"),
    ):
        assert can_i(traefik, verb, resource, namespace, group), (verb, resource)
    for verb, resource, group in (
        ("patch", "httproutes", GATEWAY_GROUP),  # routes are the pipeline's to write
        ("update", "gateways", GATEWAY_GROUP),
        ("get", "pods", ""),
        ("create", "endpointslices", "discovery.k8s.io"),
        ("get", "secrets", ""),  # its informers list and watch; nothing reads one by name
    ):
        assert not can_i(traefik, verb, resource, namespace, group), (verb, resource)


def test_a_backend_outside_loopback_is_never_dialled(kube, namespace, platform) -> None:
    """0.0.0.0 is not loopback, yet Linux would connect it to a server on 127.0.0.1: the guard.

    Without the guard (HTTP_PROXY=NOWHERE) Traefik would reach this test's server through
    0.0.0.0 and answer 200; with it, the request is refused before any dial (502). The apiserver
    takes 0.0.0.0 only in an FQDN EndpointSlice, whose address Traefik dials all the same.
    """
    client.Configuration.set_default(kube.configuration)
    custom = client.CustomObjectsApi(kube)
    environ = _environ(platform.traefik.daemon.pid())
    assert environ["HTTP_PROXY"] == environ["http_proxy"] == NOWHERE
    assert not environ["NO_PROXY"] and not environ["no_proxy"]
    server = _Backend("unspecified", "127.0.0.1")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        _service(namespace, "web-stable", "0.0.0.0", server.server_address[1], "FQDN")
        _service(namespace, "web-canary", POD_IPS["canary"], server.server_address[1])
        route = _route(namespace, {"stable": 1})
        custom.create_namespaced_custom_object(
            GATEWAY_GROUP, VERSION, namespace, "httproutes", route
        )
        _until(lambda: _accepted(custom, namespace), 30, "Traefik accepts the route")
        headers = {"Host": f"web.{namespace}"}
        with httpx.Client(base_url=platform.traefik.url, headers=headers, timeout=5) as web:
            _until(lambda: _send(web, 1) == Counter({"502": 1}), 15, "the route answers 502")
            assert _send(web, 20) == Counter({"502": 20})
        assert server.served == 0
    finally:
        server.shutdown()
        server.server_close()


def _environ(pid: int | None) -> dict[str, str]:
    assert pid, "traefik does not run"
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().partition("=")[::2] for item in raw if item)


def test_traefik_listens_on_loopback_only_and_never_logs_its_token(platform: Platform) -> None:
    traefik = platform.traefik
    token = traefik.token_file.read_text()
    assert oct(traefik.token_file.stat().st_mode & 0o777) == "0o600"
    assert token not in traefik.daemon.logfile.read_text()
    assert token not in traefik.config_file.read_text()
    pid = traefik.daemon.pid()
    assert pid and token not in str(_environ(pid))
    loopback = "0100007F"  # 127.0.0.1 as /proc/net/tcp writes it
    assert _listening(pid) == {(loopback, traefik.port), (loopback, traefik.admin_port)}


def test_a_cold_build_gives_a_working_traefik(platform: Platform, tmp_path, monkeypatch) -> None:
    """A new machine: traefik builds into an empty cache folder (Go's own caches stay warm)."""
    monkeypatch.setenv("KYB_CACHE_DIR", str(tmp_path / "cache"))
    settings = Settings()
    cold = Traefik(settings, platform.cluster, platform.dr_cluster)
    assert not cold.program.exists()
    cold.install()
    assert cold.build_seconds, "nothing was built"
    version = httpx.get(f"{platform.traefik.api_url}/api/version", timeout=5).json()
    from sandbox.procs import run

    out = run([str(cold.program), "version"], "traefik")
    assert "v3.6.12" in out and version["Version"] == "v3.6.12"
    cold.install()  # the cached binary: nothing to build again
    assert len(cold.build_seconds) == 1
    shutil.rmtree(tmp_path / "cache")
