"""The orchestrator's own faults never leave a release half-done (issue 22).

Each test breaks the Prefect server, the worker or the flow process in the middle of a canary
release run by a real worker, and nobody touches anything after: the run ends clean by itself
(the release completed, or rolled back to stable) through the release's Lease and the scheduled
reconcile flow. The seconds from the fault's end to the clean state are kept as the test's
`seconds_to_clean` property (benchmarks/faults.py prints them side by side).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest

from tests.integration.faults import ROOT, Scene, prefect_away, scene
from tests.integration.progress_helpers import final_progress
from tests.integration.release_helpers import V1, V2


@pytest.fixture
def s(platform, tmp_path: Path) -> Iterator[Scene]:
    with scene(platform, tmp_path) as found:
        yield found


def _labels(s: Scene) -> dict[str, str]:
    return {k: v for k, v in (s.run().labels or {}).items() if k.startswith("kyb.")}


def _result(labels: dict[str, str]) -> str:
    [result] = [
        v for k, v in labels.items() if k.startswith("kyb.release.") and k.endswith(".result")
    ]
    return result


def test_prefect_server_away_90s_mid_step_and_through_the_pause(s: Scene, record_property) -> None:
    s.release()
    s.wait_canary(ready=False)  # the canary written, its pods not ready: mid-step
    prefect_away(s)  # the step ends, the pause begins and ends while the server is away
    took = s.clean_after(time.monotonic(), V2)
    record_property("seconds_to_clean", round(took, 1))
    assert s.run().state_name == "Completed"
    assert _result(_labels(s)) == "succeeded"  # its record reached the server once it was back
    # the progress it made while the server was away reached the server once it was back
    percent, _ = final_progress(f"release-progress-{s.namespace}-web", UUID(s.run_id))
    assert percent == 100


def test_worker_killed_mid_step_is_resumed(s: Scene, record_property) -> None:
    s.release()
    s.wait_canary(ready=False)
    s.stop_worker(signal.SIGKILL)  # its flow-run process dies with it (its output pipe is gone)
    s.start_worker()  # as its supervisor restarts it: nobody re-runs the release by hand
    took = s.clean_after(time.monotonic(), V2)
    record_property("seconds_to_clean", round(took, 1))
    labels = _labels(s)
    assert s.run().state_name == "Completed", labels
    assert labels["kyb.resumes"] == "1"  # the reconciler scheduled the same run again
    assert _result(labels) == "succeeded"


def test_flow_process_killed_at_the_pause_is_resumed(s: Scene, record_property) -> None:
    s.release()
    s.wait_canary(ready=True)
    for pid in s.flow_processes():
        os.kill(pid, signal.SIGKILL)
    took = s.clean_after(time.monotonic(), V2)
    record_property("seconds_to_clean", round(took, 1))
    assert s.run().state_name == "Completed"
    assert _labels(s)["kyb.resumes"] == "1"


def _in_process_release(s: Scene) -> subprocess.Popen:
    """The V2 canary run straight from Python (no deployment: it cannot be scheduled again)."""
    code = (
        "from tests.integration.release_helpers import V2, Scripted, release_flow, spec\n"
        "from tests.integration.faults import CANARY, REPLICAS\n"
        f"release_flow(spec({s.namespace!r}, V2, CANARY, replicas=REPLICAS), Scripted())\n"
    )
    env = {**os.environ, **s.platform.env()}
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_killed_release_outside_a_deployment_is_rolled_back(s: Scene, record_property) -> None:
    proc = _in_process_release(s)
    s.wait_canary(ready=True)
    proc.kill()
    proc.wait(30)
    s.run_id = _newest_release_run(s)
    took = s.clean_after(time.monotonic(), V1)
    record_property("seconds_to_clean", round(took, 1))
    labels = _labels(s)
    assert s.run().state_name == "Crashed"
    assert _result(labels) == "crashed"
    cause = next(v for k, v in labels.items() if k.endswith(".cause"))
    assert "stopped renewing the lock" in cause and "rolled back" in cause, cause


def _newest_release_run(s: Scene) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as api:
        [run] = api.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["release-under-test"])),
            sort=FlowRunSort.START_TIME_DESC,
            limit=1,
        )
    assert (run.labels or {}).get("kyb.app") == "web"
    return str(run.id)
