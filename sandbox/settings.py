"""Where the local platform keeps its state, its cached binaries, and which loopback ports it uses.

Every value can be overridden by an environment variable (named next to it), so two platforms or a
busy port can be worked around without editing code. Only 127.0.0.1 is ever bound or dialled.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
K8S_VERSION = "1.34.4"  # built from Go modules by sandbox/cluster (see gen_gomod.py)
KWOK_VERSION = "0.8.0"
CLUSTER_NAME = "kyb"


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
    prometheus: int = field(default_factory=lambda: _port("KYB_PROMETHEUS_PORT", 9090))
    prefect: int = field(default_factory=lambda: _port("KYB_PREFECT_PORT", 4200))
    postgres: int = field(default_factory=lambda: _port("KYB_POSTGRES_PORT", 55432))
    apiserver: int = field(default_factory=lambda: _port("KYB_APISERVER_PORT", 36443))
    etcd: int = field(default_factory=lambda: _port("KYB_ETCD_PORT", 32379))
    etcd_peer: int = field(default_factory=lambda: _port("KYB_ETCD_PEER_PORT", 32380))
    controller_manager: int = field(default_factory=lambda: _port("KYB_KCM_PORT", 30257))
    scheduler: int = field(default_factory=lambda: _port("KYB_SCHEDULER_PORT", 30259))
    kwok: int = field(default_factory=lambda: _port("KYB_KWOK_PORT", 30247))


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
