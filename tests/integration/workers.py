"""A process worker of one work pool, run once in a child process, as the platform's worker is."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import ConcurrencyLimitConfig

ROOT = Path(__file__).parents[2]
PREFECT = str(Path(sys.executable).parent / "prefect")


def run_once(pool: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """`prefect worker start --pool POOL --run-once` with exactly `env`; it must exit 0.

    It runs the pool's runs scheduled by then, each as a flow-run process of its own, from the
    checkout (`ROOT`, where the deployments' pull step points).
    """
    worker = subprocess.run(
        [PREFECT, "worker", "start", "--pool", pool, "--run-once"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert worker.returncode == 0, worker.stdout[-1500:] + worker.stderr[-1500:]
    return worker


def release_limit() -> ConcurrencyLimitConfig:
    """The `release` deployment's concurrency limit, as prefect.yaml sets it."""
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    found = next(d for d in config["deployments"] if d["name"] == "release")
    return ConcurrencyLimitConfig(**found["concurrency_limit"])


@contextlib.contextmanager
def deployed(
    entrypoints: tuple[str, ...], per_flow: dict[str, dict[str, Any]] | None = None, **options: Any
) -> Iterator[str]:
    """A process work pool of the caller's own, with deployments of these flows on it.

    Each deployment is named like the pool; `options` go to every `deploy` (a concurrency
    limit), `per_flow[<function name>]` to that flow's only (a schedule, parameters).
    """
    from prefect import flow

    name = f"t-pool-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=name, type="process"))
    ids = [
        flow.from_source(str(ROOT), entrypoint).deploy(
            name=name,
            work_pool_name=name,
            print_next_steps=False,
            **options,
            **(per_flow or {}).get(entrypoint.rpartition(":")[2], {}),
        )
        for entrypoint in entrypoints
    ]
    try:
        yield name
    finally:
        with get_client(sync_client=True) as client:
            for deployment_id in ids:
                client.delete_deployment(deployment_id)
            client.delete_work_pool(name)
