"""Prefect blocks holding the credentials of clusters, registries and Prometheus."""

from blocks.cluster import KubernetesCluster
from blocks.prometheus import PrometheusServer
from blocks.registry import ContainerRegistry

__all__ = ["ContainerRegistry", "KubernetesCluster", "PrometheusServer"]
