"""Where the local platform keeps its state and cached binaries, and its loopback ports."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
# The network rule as configuration: what the platform sets in KYB_EGRESS_ALLOW for its checks.
LOOPBACK_ONLY = "127.0.0.0/8,localhost"
K8S_VERSION = "1.34.4"  # built from Go modules by sandbox/cluster (see gen_gomod.py)
KWOK_VERSION = "0.8.0"
CLUSTER_NAME = "kyb"
DR_CLUSTER_NAME = "kyb-dr"  # the disaster-recovery cluster: restores land here
VELERO_VERSION = "1.18.3"  # built from Go modules by sandbox/velero (see its go.mod)
VELERO_AWS_VERSION = "1.14.3"  # velero-plugin-for-aws, Velero's S3 object-store plugin
GOFAKES3_VERSION = "1.2.0"  # the S3-compatible store
TRAEFIK_VERSION = "3.6.12"  # built from Go modules by sandbox/traefik (see its go.mod)
# The clusters' addresses: loopback, so a process may listen on a pod IP and nothing dialled leaves
# the machine (the cluster refuses to start otherwise: sandbox/cluster/kwok_config.check_addresses).
POD_CIDR = "127.32.0.0/16"  # KYB_POD_CIDR: pod IPs, handed out by kwok
SERVICE_CIDR = "127.64.0.0/16"  # KYB_SERVICE_CIDR: Service ClusterIPs
RUN_POD_CIDR = "127.48.0.0/16"  # KYB_RUN_POD_CIDR: IPs of the pods the pod runner runs for real
DR_RUN_POD_CIDR = "127.49.0.0/16"  # KYB_DR_RUN_POD_CIDR: the same on the DR cluster (restores)


def _path(var: str, default: Path) -> Path:
    return Path(os.environ.get(var, str(default))).expanduser()


def _port(var: str, default: int) -> int:
    raw = os.environ.get(var, str(default))
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ValueError(f"{var}={raw!r} is not a TCP port: set it to a number from 1 to 65535")
    return int(raw)


@dataclass(frozen=True)
class Ports:
    """Loopback ports of the platform's services."""

    registry: int = field(default_factory=lambda: _port("KYB_REGISTRY_PORT", 5001))
    token_registry: int = field(default_factory=lambda: _port("KYB_TOKEN_REGISTRY_PORT", 5002))
    token_issuer: int = field(default_factory=lambda: _port("KYB_TOKEN_ISSUER_PORT", 5003))
    prometheus: int = field(default_factory=lambda: _port("KYB_PROMETHEUS_PORT", 9090))
    prefect: int = field(default_factory=lambda: _port("KYB_PREFECT_PORT", 4200))
    postgres: int = field(default_factory=lambda: _port("KYB_POSTGRES_PORT", 55432))
    apiserver: int = field(default_factory=lambda: _port("KYB_APISERVER_PORT", 36443))
    etcd: int = field(default_factory=lambda: _port("KYB_ETCD_PORT", 32379))
    etcd_peer: int = field(default_factory=lambda: _port("KYB_ETCD_PEER_PORT", 32380))
    controller_manager: int = field(default_factory=lambda: _port("KYB_KCM_PORT", 30257))
    scheduler: int = field(default_factory=lambda: _port("KYB_SCHEDULER_PORT", 30259))
    kwok: int = field(default_factory=lambda: _port("KYB_KWOK_PORT", 30247))
    dr_apiserver: int = field(default_factory=lambda: _port("KYB_DR_APISERVER_PORT", 37443))
    dr_etcd: int = field(default_factory=lambda: _port("KYB_DR_ETCD_PORT", 33379))
    dr_etcd_peer: int = field(default_factory=lambda: _port("KYB_DR_ETCD_PEER_PORT", 33380))
    dr_controller_manager: int = field(default_factory=lambda: _port("KYB_DR_KCM_PORT", 31257))
    dr_scheduler: int = field(default_factory=lambda: _port("KYB_DR_SCHEDULER_PORT", 31259))
    dr_kwok: int = field(default_factory=lambda: _port("KYB_DR_KWOK_PORT", 31248))
    s3: int = field(default_factory=lambda: _port("KYB_S3_PORT", 39000))
    git: int = field(default_factory=lambda: _port("KYB_GIT_PORT", 39418))
    webhook: int = field(default_factory=lambda: _port("KYB_WEBHOOK_PORT", 8090))
    s3_tls: int = field(default_factory=lambda: _port("KYB_S3_TLS_PORT", 39443))
    velero_metrics: int = field(default_factory=lambda: _port("KYB_VELERO_METRICS_PORT", 38085))
    velero_profiler: int = field(default_factory=lambda: _port("KYB_VELERO_PROFILER_PORT", 36060))
    dr_velero_metrics: int = field(
        default_factory=lambda: _port("KYB_DR_VELERO_METRICS_PORT", 38086)
    )
    dr_velero_profiler: int = field(
        default_factory=lambda: _port("KYB_DR_VELERO_PROFILER_PORT", 36061)
    )
    traefik: int = field(default_factory=lambda: _port("KYB_TRAEFIK_PORT", 38080))
    traefik_admin: int = field(default_factory=lambda: _port("KYB_TRAEFIK_ADMIN_PORT", 38081))
    argo_metrics: int = field(default_factory=lambda: _port("KYB_ARGO_METRICS_PORT", 38090))
    argo_healthz: int = field(default_factory=lambda: _port("KYB_ARGO_HEALTHZ_PORT", 38091))
    metrics: int = field(default_factory=lambda: _port("KYB_METRICS_PORT", 9108))


@dataclass(frozen=True)
class KwokCluster:
    """One kwokctl cluster of the platform: its name, kubeconfig and loopback ports."""

    name: str  # kwokctl --name
    port_vars: str  # prefix of its port variables, for error messages: KYB_ or KYB_DR_
    kubeconfig: Path
    apiserver: int
    etcd: int
    etcd_peer: int
    controller_manager: int
    scheduler: int
    kwok: int


@dataclass(frozen=True)
class Settings:
    """Paths and ports of one local platform."""

    home: Path = field(
        default_factory=lambda: _path("KYB_SANDBOX_HOME", Path("~/.local/state/kyb-sandbox"))
    )
    cache: Path = field(
        default_factory=lambda: _path("KYB_CACHE_DIR", Path("~/.cache/kyb-pipeline"))
    )
    ports: Ports = field(default_factory=Ports)
    docker_socket: Path = field(
        default_factory=lambda: _path("KYB_DOCKER_SOCKET", Path("/var/run/docker.sock"))
    )
    pod_cidr: str = field(default_factory=lambda: os.environ.get("KYB_POD_CIDR", POD_CIDR))
    service_cidr: str = field(
        default_factory=lambda: os.environ.get("KYB_SERVICE_CIDR", SERVICE_CIDR)
    )
    node_ip: str = field(default_factory=lambda: os.environ.get("KYB_NODE_IP", HOST))
    run_pod_cidr: str = field(
        default_factory=lambda: os.environ.get("KYB_RUN_POD_CIDR", RUN_POD_CIDR)
    )
    dr_run_pod_cidr: str = field(
        default_factory=lambda: os.environ.get("KYB_DR_RUN_POD_CIDR", DR_RUN_POD_CIDR)
    )

    def dir(self, component: str) -> Path:
        """Return (and create) the state folder of one component."""
        path = self.home / component
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def k8s_bin(self) -> Path:
        """Folder of the cached Kubernetes binaries for the pinned version."""
        return self.cache / f"k8s-v{K8S_VERSION}"

    @property
    def kwok_bin(self) -> Path:
        """Folder of the cached kwok and kwokctl binaries."""
        return self.cache / f"kwok-v{KWOK_VERSION}"

    @property
    def kubeconfig(self) -> Path:
        """Kubeconfig of the local cluster (written by kwokctl)."""
        return self.home / "kwok" / "clusters" / CLUSTER_NAME / "kubeconfig.yaml"

    @property
    def dr_kubeconfig(self) -> Path:
        """Kubeconfig of the disaster-recovery cluster (written by kwokctl)."""
        return self.home / "kwok" / "clusters" / DR_CLUSTER_NAME / "kubeconfig.yaml"

    @property
    def main_cluster(self) -> KwokCluster:
        """The cluster the pipeline deploys to."""
        p = self.ports
        return KwokCluster(
            CLUSTER_NAME,
            "KYB_",
            self.kubeconfig,
            p.apiserver,
            p.etcd,
            p.etcd_peer,
            p.controller_manager,
            p.scheduler,
            p.kwok,
        )

    @property
    def dr_cluster(self) -> KwokCluster:
        """The cluster backups are restored into."""
        p = self.ports
        return KwokCluster(
            DR_CLUSTER_NAME,
            "KYB_DR_",
            self.dr_kubeconfig,
            p.dr_apiserver,
            p.dr_etcd,
            p.dr_etcd_peer,
            p.dr_controller_manager,
            p.dr_scheduler,
            p.dr_kwok,
        )

    @property
    def velero_bin(self) -> Path:
        """Folder of the cached velero binary."""
        return self.cache / f"velero-v{VELERO_VERSION}"

    @property
    def velero_plugins(self) -> Path:
        """Velero's --plugin-dir: the cached AWS object-store plugin, and nothing else."""
        return self.cache / f"velero-plugin-aws-v{VELERO_AWS_VERSION}"

    @property
    def gofakes3_bin(self) -> Path:
        """Folder of the cached gofakes3 binary."""
        return self.cache / f"gofakes3-v{GOFAKES3_VERSION}"

    @property
    def s3tls_bin(self) -> Path:
        """Folder of the cached s3tls binary (gofakes3 served over TLS, sandbox/s3tls)."""
        return self.cache / f"s3tls-gofakes3-v{GOFAKES3_VERSION}"

    @property
    def argo_rollouts_bin(self) -> Path:
        """Folder of the cached Argo Rollouts controller and kubectl plugin."""
        from sandbox.argo.crds import VERSION

        return self.cache / f"argo-rollouts-v{VERSION}"

    @property
    def traefik_bin(self) -> Path:
        """Folder of the cached traefik binary."""
        return self.cache / f"traefik-v{TRAEFIK_VERSION}"
