"""The whole local platform: bring every component up in order, save blocks, report, tear down."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.delivery.approval import DEMO_SETTING
from core.delivery.reach import EGRESS_SETTING
from sandbox import ports
from sandbox.argo import crds as argo_crds
from sandbox.components import Component, Status
from sandbox.components.argo_rollouts import ArgoRollouts
from sandbox.components.cluster import Cluster
from sandbox.components.docker import Docker
from sandbox.components.git_server import GitServer
from sandbox.components.kube_worker import KubeWorker
from sandbox.components.metrics_exporter import MetricsExporter
from sandbox.components.podrunner import PodRunner
from sandbox.components.postgres import Postgres
from sandbox.components.prefect_server import PrefectServer
from sandbox.components.prometheus import SCRAPE_INTERVAL, Prometheus
from sandbox.components.prometheus_pods import PrometheusPods
from sandbox.components.registry import Registry
from sandbox.components.s3store import S3Store
from sandbox.components.s3tls import S3TlsStore
from sandbox.components.token_registry import TokenRegistry
from sandbox.components.traefik import Traefik
from sandbox.components.velero import Velero
from sandbox.install import exclusive
from sandbox.settings import LOOPBACK_ONLY, Settings
from sandbox.tools import tool_env

if TYPE_CHECKING:
    from blocks import KubernetesCluster

BLOCK_NAME = "local"  # name of the block documents that point at this platform
TOKEN_BLOCK_NAME = "token"  # the ContainerRegistry block of the token-auth registry
DR_BLOCK_NAME = "dr"  # the disaster-recovery cluster's KubernetesCluster and VeleroInstall
WORK_POOL = "kyb-local"  # the process work pool prefect.yaml's deployments run on


@dataclass
class Timings:
    """Seconds spent per component and phase during one `up`."""

    rows: list[tuple[str, str, float]] = field(default_factory=list)

    def add(self, component: str, phase: str, seconds: float) -> None:
        """Record one measurement."""
        self.rows.append((component, phase, seconds))

    def lines(self) -> list[str]:
        """Human-readable lines, one per measurement."""
        return [f"  {c:<10} {p:<8} {s:7.1f}s" for c, p, s in self.rows]


class Platform:
    """All components of the local platform, in start order."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        s = self.settings
        self.docker = Docker(s)
        self.registry = Registry(s)
        self.token_registry = TokenRegistry(s)  # Bearer challenges, like GHCR or Harbor
        self.s3 = S3Store(s)
        self.s3_tls = S3TlsStore(s)  # the S3 store over TLS by host name
        self.git = GitServer(s)  # a git host: repositories fetched by commit, a push webhook
        self.prometheus = Prometheus(s)
        self.postgres = Postgres(s)
        database = os.environ.get("KYB_PREFECT_DB", "postgres")
        if database not in ("sqlite", "postgres"):
            raise ValueError(f"KYB_PREFECT_DB={database!r}: use postgres (default) or sqlite")
        # PostgreSQL by default: on SQLite, bursts of flow runs meet "database is locked" (503s
        # the client retries, then runs fail); KYB_PREFECT_DB=sqlite for a lighter platform
        pg = database == "postgres"
        self.prefect = PrefectServer(s, self.postgres.url if pg else None)
        self.metrics = MetricsExporter(s, self.prefect, self.prometheus)  # scraped, with rules
        self.cluster = Cluster(s)
        self.dr_cluster = Cluster(s, s.dr_cluster, "dr-cluster")  # restores land here
        self.podrunner = PodRunner(s)  # runs the main cluster's pods labelled kyb.dev/run=true
        self.dr_podrunner = PodRunner(s, dr=True)  # and the DR cluster's: restores that serve
        self.prometheus_pods = PrometheusPods(s, self.prometheus, self.cluster)  # pods, by k8s SD
        self.velero = Velero(s, self.cluster, self.s3)
        self.dr_velero = Velero(s, self.dr_cluster, self.s3)
        self.traefik = Traefik(s, self.cluster, self.dr_cluster)  # the entry point: Gateway API
        self.argo_rollouts = ArgoRollouts(s, self.cluster)  # opt-in: `sandbox up argo-rollouts`
        # opt-in: `sandbox up kube-worker`, the kyb-kubernetes pool's worker and the image it runs
        self.kube_worker = KubeWorker(s, self.prefect, build=self._pipeline_image)
        self.components: list[Component] = [
            self.docker,
            self.registry,
            self.s3,
            self.s3_tls,
            self.token_registry,
            self.git,
            self.prometheus,
            *([self.postgres] if pg else []),
            self.prefect,
            self.metrics,
            self.cluster,
            self.dr_cluster,
            self.podrunner,
            self.dr_podrunner,
            self.prometheus_pods,
            self.velero,
            self.dr_velero,
            self.traefik,
        ]
        # started only when named (`sandbox up argo-rollouts`), so the default platform's cost
        # does not grow; `status`, `env` and a plain `down` include them
        self.optional: list[Component] = [self.argo_rollouts, self.kube_worker]

    def _pipeline_image(self) -> str:
        """The pipeline's image by digest, built and pushed unless the registry has it."""
        from sandbox.pipeline_image import build_and_push

        return build_and_push(self)

    def _pick(self, only: list[str] | None) -> list[Component]:
        if not only:
            return self.components
        every = [*self.components, *self.optional]
        unknown = sorted(set(only) - {c.name for c in every})
        if unknown:
            names = sorted(c.name for c in every)
            raise ValueError(f"unknown component(s) {unknown}: choose from {names}")
        return [c for c in every if c.name in only]

    def up(self, only: list[str] | None = None, say: Callable[[str], None] = print) -> Timings:
        """Install and start the components (all, or those named), then save the blocks.

        One `up` at a time per state folder: a second one waits, then finds the first one's work.
        """
        with exclusive(self.settings.home / "up.lock"):
            return self._up(self._pick(only), not only, say)

    def _up(self, picked: list[Component], everything: bool, say: Callable[[str], None]) -> Timings:
        timings = Timings()
        said = ports.reserve(self.settings)  # before any service binds, or a client takes one
        if not said.startswith(("ports already", "reserved")):
            say(said)
        crds: list[dict] | None = None  # Argo Rollouts' CRDs, read once for both clusters
        for comp in picked:
            for phase, step in (("install", comp.install), ("start", comp.up)):
                started = time.monotonic()
                step()
                timings.add(comp.name, phase, time.monotonic() - started)
            if comp is self.cluster or comp is self.dr_cluster:
                started = time.monotonic()  # every up: a no-op apply when they are there
                crds = crds if crds is not None else argo_crds.argo_crds()
                argo_crds.install(comp.kubeconfig, crds)
                timings.add(comp.name, "crds", time.monotonic() - started)
            say(f"{comp.name}: up ({comp.status().address})")
        for comp in picked:  # Go builds, when install had to build (a new machine)
            for name, secs in getattr(comp, "build_seconds", {}).items():
                timings.add(name, "build", secs)
        if everything:
            started = time.monotonic()
            self.save_blocks()
            timings.add("blocks", "save", time.monotonic() - started)
        return timings

    def save_blocks(self) -> None:
        """Save blocks named 'local' that point at this platform, and create the work pool.

        Backups get their own: KubernetesCluster 'dr' (the DR cluster), ObjectStore 'local' (the
        S3 store), VeleroInstall 'local' and 'dr' (each referencing its saved cluster block).
        Environments 'dev', 'staging', 'production' each get their own KubernetesCluster block,
        with a token of that environment's ServiceAccount (sandbox/rbac.py).
        """
        import contextlib

        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import WorkPoolCreate
        from prefect.exceptions import ObjectAlreadyExists
        from prefect.settings import temporary_settings

        from blocks import ContainerRegistry, KubernetesCluster, PrometheusServer
        from sandbox.rbac import save_environments

        user, password = self.registry.credentials()
        with temporary_settings(self.prefect.client_settings()):
            local = KubernetesCluster.from_kubeconfig_file(self.settings.kubeconfig)
            local.save(BLOCK_NAME, overwrite=True)
            ContainerRegistry(
                address=self.registry.address, username=user, password=password, insecure=True
            ).save(BLOCK_NAME, overwrite=True)
            token_user, token_password = self.token_registry.credentials()
            ContainerRegistry(
                address=self.token_registry.address,
                username=token_user,
                password=token_password,
                insecure=True,
            ).save(TOKEN_BLOCK_NAME, overwrite=True)
            prometheus = PrometheusServer(
                url=self.prometheus.url, scrape_interval_seconds=float(SCRAPE_INTERVAL.rstrip("s"))
            )
            prometheus.save(BLOCK_NAME, overwrite=True)
            self._save_backup_blocks(local)
            save_environments(local, prometheus)  # dev, staging, production: own credentials
            with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
                client.create_work_pool(WorkPoolCreate(name=WORK_POOL, type="process"))
            self._create_kubernetes_pool()

    def _create_kubernetes_pool(self) -> None:
        """The `kyb-kubernetes` pool prefect.yaml's in-cluster variants name.

        So `prefect deploy --all` can create them; `sandbox up kube-worker` gives the pool its
        image and its worker.
        """
        import json

        from sandbox.components.kube_worker import TEMPLATE, ensure_pool

        ensure_pool(json.loads(TEMPLATE.read_text()), update=False)

    def _save_backup_blocks(self, local: KubernetesCluster) -> None:
        """Save the DR cluster, object store and Velero blocks (Prefect API already set)."""
        from blocks import KubernetesCluster, ObjectStore, VeleroInstall

        dr = KubernetesCluster.from_kubeconfig_file(self.settings.dr_kubeconfig)
        dr.save(DR_BLOCK_NAME, overwrite=True)
        key_id, secret_key = self.s3.credentials()
        ObjectStore(
            endpoint=self.s3.endpoint,
            bucket=self.s3.bucket,
            region=self.s3.region,
            access_key_id=key_id,
            secret_access_key=secret_key,
        ).save(BLOCK_NAME, overwrite=True)
        for name, cluster, velero in (
            (BLOCK_NAME, local, self.velero),
            (DR_BLOCK_NAME, dr, self.dr_velero),
        ):
            # the saved cluster block is referenced, not copied: one kubeconfig to rotate
            VeleroInstall(cluster=cluster, metrics_url=velero.metrics_url).save(
                name, overwrite=True
            )

    def down(self, only: list[str] | None = None) -> None:
        """Stop the components we started, in reverse order."""
        for comp in reversed(self._pick(only) if only else [*self.components, *self.optional]):
            comp.down()
        if not only:
            self.postgres.down()  # also when KYB_PREFECT_DB changed since it was started

    def status(self) -> list[Status]:
        """Status of every component."""
        return [c.status() for c in [*self.components, *self.optional]]

    def env(self) -> dict[str, str]:
        """Environment variables that point clients at the platform."""
        merged: dict[str, str] = tool_env()
        for comp in [*self.components, *self.optional]:
            merged.update(comp.env())
        merged[EGRESS_SETTING] = LOOPBACK_ONLY  # the network rule: checks stay on loopback
        merged[DEMO_SETTING] = "true"  # the local platform is a demo: auto_approve may be used
        return merged
