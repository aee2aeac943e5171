"""Render the kwokctl config: local binaries, loopback addresses, default and project stages."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from pathlib import Path

import yaml

from sandbox.errors import PlatformError
from sandbox.settings import (
    DR_RUN_POD_CIDR,
    HOST,
    KWOK_VERSION,
    POD_CIDR,
    RUN_POD_CIDR,
    SERVICE_CIDR,
    KwokCluster,
    Settings,
)

STAGES_DIR = Path(__file__).parent / "stages"
# kwokctl's own default stages (see pkg/kwokctl/runtime/cluster.go in kwok): listing any Stage in
# the config replaces them, so the config names them again, read from the pinned kwok module.
DEFAULT_STAGES = [
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
]
NODE_IP = HOST  # defaults (sandbox.settings): pod IPs POD_CIDR, Service ClusterIPs SERVICE_CIDR
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
NO_LEADER_ELECTION = {"key": "leader-elect", "value": "false"}
__all__ = ["NODE_IP", "POD_CIDR", "SERVICE_CIDR", "check_addresses", "render"]


def _network(var: str, value: str, default: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(value)
    except ValueError:
        raise PlatformError(
            "cluster", f"{var}={value!r} is not a network", f"set it to a CIDR such as {default}"
        ) from None


def check_addresses(settings: Settings) -> None:
    """Refuse node, pod and Service addresses outside 127.0.0.0/8 (the network rule).

    A pod IP is where the pod runner's process listens and where Prometheus, Traefik and the tests
    dial: it must stay on loopback. The ranges must not overlap each other or the node's IP.

    Raises:
        PlatformError: naming the setting to fix (KYB_POD_CIDR, KYB_SERVICE_CIDR, KYB_NODE_IP,
            KYB_RUN_POD_CIDR, KYB_DR_RUN_POD_CIDR).
    """
    wanted = {
        "KYB_POD_CIDR": (settings.pod_cidr, POD_CIDR),
        "KYB_SERVICE_CIDR": (settings.service_cidr, SERVICE_CIDR),
        "KYB_RUN_POD_CIDR": (settings.run_pod_cidr, RUN_POD_CIDR),
        "KYB_DR_RUN_POD_CIDR": (settings.dr_run_pod_cidr, DR_RUN_POD_CIDR),
        "KYB_NODE_IP": (settings.node_ip, HOST),
    }
    nets = {var: _network(var, value, default) for var, (value, default) in wanted.items()}
    for var, net in nets.items():
        if net.version != 4 or not net.subnet_of(LOOPBACK):  # type: ignore[arg-type]
            raise PlatformError(
                "cluster",
                f"{var}={net} leaves 127.0.0.0/8: the platform only dials loopback addresses",
                f"set {var} inside 127.0.0.0/8 (default {wanted[var][1]})",
            )
    if nets["KYB_NODE_IP"].num_addresses != 1:
        raise PlatformError("cluster", f"KYB_NODE_IP={settings.node_ip} is a range", f"set {HOST}")
    names = list(nets)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            if nets[first].overlaps(nets[second]):
                raise PlatformError(
                    "cluster",
                    f"{first}={nets[first]} overlaps {second}={nets[second]}",
                    f"give them separate ranges (defaults {wanted[first][1]}, {wanted[second][1]})",
                )


def kwok_module_dir() -> Path:
    """Return the pinned kwok module's folder in Go's module cache, downloading it if needed."""
    try:
        out = subprocess.run(
            ["go", "mod", "download", "-json", f"sigs.k8s.io/kwok@v{KWOK_VERSION}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise PlatformError(
            "cluster", f"cannot fetch the kwok v{KWOK_VERSION} module: {exc}", "check Go's proxy"
        ) from None
    return Path(json.loads(out)["Dir"])


def default_stages() -> list[dict]:
    """The five stages kwokctl uses when a config lists none.

    pod-complete ends every running pod a Job owns at once; a Job's pod the pod runner runs
    (kyb.dev/run=true) ends when its container exits, so that stage skips the label.
    """
    base = kwok_module_dir()
    stages = [yaml.safe_load((base / rel).read_text()) for rel in DEFAULT_STAGES]
    for stage in stages:
        if stage["metadata"]["name"] == "pod-complete":
            stage["spec"]["selector"]["matchExpressions"].append(
                {"key": '.metadata.labels["kyb.dev/run"]', "operator": "NotIn", "values": ["true"]}
            )
    return stages


def project_stages() -> list[dict]:
    """The project's own stages, by file name.

    pod-not-ready, pod-probe-start and pod-probe-ready (realistic readiness), pod-run by label;
    pod-ready-again for pods a node outage marked unready.
    """
    return [yaml.safe_load(p.read_text()) for p in sorted(STAGES_DIR.glob("*.yaml"))]


def render(settings: Settings, cluster: KwokCluster | None = None) -> str:
    """Return the multi-document kwokctl config for one cluster (default: the main one)."""
    ports = cluster or settings.main_cluster
    k8s, kwok = settings.k8s_bin, settings.kwok_bin
    kwokctl = {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokctlConfiguration",
        "options": {
            "runtime": "binary",
            "bindAddress": HOST,
            "kubeApiserverPort": ports.apiserver,
            "etcdPort": ports.etcd,
            "etcdPeerPort": ports.etcd_peer,
            "kubeControllerManagerPort": ports.controller_manager,
            "kubeSchedulerPort": ports.scheduler,
            "kwokControllerPort": ports.kwok,
            "kubeApiserverBinary": str(k8s / "kube-apiserver"),
            "kubeControllerManagerBinary": str(k8s / "kube-controller-manager"),
            "kubeSchedulerBinary": str(k8s / "kube-scheduler"),
            "kubectlBinary": str(k8s / "kubectl"),
            "etcdBinary": str(k8s / "etcd"),
            "kwokControllerBinary": str(kwok / "kwok"),
            "kubeAuthorization": True,  # RBAC, so least-privilege roles are really enforced
            "kubeAdmission": True,  # admission plugins, Pod Security Admission among them
            "etcdQuotaBackendSize": "2Gi",
        },
        "componentsPatches": [
            {
                "name": "kube-apiserver",
                "extraArgs": [{"key": "service-cluster-ip-range", "value": settings.service_cidr}],
            },
            # One instance each, and nobody restarts them: without leader election they ride out
            # an apiserver outage instead of exiting when their lease cannot be renewed.
            {"name": "kube-controller-manager", "extraArgs": [NO_LEADER_ELECTION]},
            {"name": "kube-scheduler", "extraArgs": [NO_LEADER_ELECTION]},
            {
                # flags, not a KwokConfiguration document: a document would replace all of
                # kwok's defaults (parallelism and the like), not just these two fields
                "name": "kwok-controller",
                "extraArgs": [
                    {"key": "cidr", "value": settings.pod_cidr},
                    {"key": "node-ip", "value": settings.node_ip},
                ],
            },
        ],
    }
    docs = [kwokctl, *default_stages(), *project_stages()]
    return yaml.safe_dump_all(docs, sort_keys=False)
