"""Render the kwokctl config: local binaries, loopback addresses, default and project stages."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from sandbox.errors import PlatformError
from sandbox.settings import HOST, KWOK_VERSION, KwokCluster, Settings

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
POD_CIDR = "127.32.0.0/16"  # pod IPs are loopback: nothing can ever dial out of the machine
NODE_IP = HOST
SERVICE_CIDR = "127.64.0.0/16"  # Service ClusterIPs too
NO_LEADER_ELECTION = {"key": "leader-elect", "value": "false"}


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
    """The five stages kwokctl uses when a config lists none."""
    base = kwok_module_dir()
    return [yaml.safe_load((base / rel).read_text()) for rel in DEFAULT_STAGES]


def project_stages() -> list[dict]:
    """The project's own stages (pod-not-ready by label, pod-ready-again after a node outage)."""
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
                "extraArgs": [{"key": "service-cluster-ip-range", "value": SERVICE_CIDR}],
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
                    {"key": "cidr", "value": POD_CIDR},
                    {"key": "node-ip", "value": NODE_IP},
                ],
            },
        ],
    }
    docs = [kwokctl, *default_stages(), *project_stages()]
    return yaml.safe_dump_all(docs, sort_keys=False)
