"""A process worker of one work pool, run once in a child process, as the platform's worker is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
