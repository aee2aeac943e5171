"""Configuration: Prefect blocks of clusters, registries, Prometheus, backups, git, environments."""

from blocks.cluster import KubernetesCluster
from blocks.environment import Environment
from blocks.git import GitRepository
from blocks.prometheus import PrometheusServer
from blocks.refs import block_ref
from blocks.registry import ContainerRegistry
from blocks.velero import ObjectStore, VeleroInstall

__all__ = [
    "ContainerRegistry",
    "Environment",
    "GitRepository",
    "KubernetesCluster",
    "ObjectStore",
    "PrometheusServer",
    "VeleroInstall",
    "block_ref",
]
