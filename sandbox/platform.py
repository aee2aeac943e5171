"""The whole local platform: bring every component up in order, save blocks, report, tear down."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sandbox.components import Component, Status
from sandbox.components.cluster import Cluster
from sandbox.components.docker import Docker
from sandbox.components.postgres import Postgres
from sandbox.components.prefect_server import PrefectServer
from sandbox.components.prometheus import SCRAPE_INTERVAL, Prometheus
from sandbox.components.registry import Registry
from sandbox.settings import Settings

BLOCK_NAME = "local"  # name of the block documents that point at this platform
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
        self.prometheus = Prometheus(s)
        self.postgres = Postgres(s)
        database = os.environ.get("KYB_PREFECT_DB", "sqlite")
        if database not in ("sqlite", "postgres"):
            raise ValueError(f"KYB_PREFECT_DB={database!r}: use sqlite (default) or postgres")
        pg = database == "postgres"  # opt-in: for bursts of concurrent flow runs
        self.prefect = PrefectServer(s, self.postgres.url if pg else None)
        self.cluster = Cluster(s)
        self.components: list[Component] = [
            self.docker, self.registry, self.prometheus, *([self.postgres] if pg else []),
            self.prefect, self.cluster,
        ]  # fmt: skip

    def _pick(self, only: list[str] | None) -> list[Component]:
        if not only:
            return self.components
        names = {c.name for c in self.components}
        unknown = sorted(set(only) - names)
        if unknown:
            raise ValueError(f"unknown component(s) {unknown}: choose from {sorted(names)}")
        return [c for c in self.components if c.name in only]

    def up(self, only: list[str] | None = None, say: Callable[[str], None] = print) -> Timings:
        """Install and start the components (all, or those named), then save the blocks."""
        timings = Timings()
        for comp in self._pick(only):
            for phase, step in (("install", comp.install), ("start", comp.up)):
                started = time.monotonic()
                step()
                timings.add(comp.name, phase, time.monotonic() - started)
            say(f"{comp.name}: up ({comp.status().address})")
        for name, secs in self.cluster.build_seconds.items():
            timings.add(name, "build", secs)
        if not only:
            started = time.monotonic()
            self.save_blocks()
            timings.add("blocks", "save", time.monotonic() - started)
        return timings

    def save_blocks(self) -> None:
        """Save blocks named 'local' that point at this platform, and create the work pool."""
        import contextlib

        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import WorkPoolCreate
        from prefect.exceptions import ObjectAlreadyExists
        from prefect.settings import PREFECT_API_URL, temporary_settings

        from blocks import ContainerRegistry, KubernetesCluster, PrometheusServer

        user, password = self.registry.credentials()
        with temporary_settings({PREFECT_API_URL: self.prefect.api_url}):
            KubernetesCluster.from_kubeconfig_file(self.settings.kubeconfig).save(
                BLOCK_NAME, overwrite=True
            )
            ContainerRegistry(
                address=self.registry.address, username=user, password=password, insecure=True
            ).save(BLOCK_NAME, overwrite=True)
            PrometheusServer(
                url=self.prometheus.url, scrape_interval_seconds=float(SCRAPE_INTERVAL.rstrip("s"))
            ).save(BLOCK_NAME, overwrite=True)
            with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
                client.create_work_pool(WorkPoolCreate(name=WORK_POOL, type="process"))

    def down(self, only: list[str] | None = None) -> None:
        """Stop the components we started, in reverse order."""
        for comp in reversed(self._pick(only)):
            comp.down()
        if not only:
            self.postgres.down()  # also when KYB_PREFECT_DB changed since it was started

    def status(self) -> list[Status]:
        """Status of every component."""
        return [c.status() for c in self.components]

    def env(self) -> dict[str, str]:
        """Environment variables that point clients at the platform."""
        merged: dict[str, str] = {}
        for comp in self.components:
            merged.update(comp.env())
        return merged
