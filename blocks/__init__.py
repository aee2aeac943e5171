"""Configuration: Prefect blocks for clusters, registries, Prometheus, backups and environments."""

from blocks.cluster import KubernetesCluster
from blocks.environment import Environment
from blocks.prometheus import PrometheusServer
from blocks.registry import ContainerRegistry
from blocks.velero import ObjectStore, VeleroInstall

__all__ = [
    "ContainerRegistry",
    "Environment",
    "KubernetesCluster",
    "ObjectStore",
    "PrometheusServer",
    "VeleroInstall",
]
