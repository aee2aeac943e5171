"""Prefect blocks holding the credentials of clusters, registries, Prometheus and backups."""

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
