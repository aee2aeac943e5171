"""Configuration: Prefect blocks for clusters, registries, Prometheus and backups; tool settings."""

from blocks.cluster import KubernetesCluster
from blocks.prometheus import PrometheusServer
from blocks.registry import ContainerRegistry
from blocks.velero import ObjectStore, VeleroInstall

__all__ = [
    "ContainerRegistry",
    "KubernetesCluster",
    "ObjectStore",
    "PrometheusServer",
    "VeleroInstall",
]
