"""Read a run's progress and steps-table artifacts back from the Prefect API, every update."""

from __future__ import annotations

import json
import time
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
)
from prefect.client.schemas.sorting import ArtifactSort
from prefect.events.filters import EventFilter, EventNameFilter, EventOrder, EventResourceFilter


def _versions(key: str, flow_run_id: UUID) -> list[Any]:
    """Every version of artifact `key` that one flow run created, oldest first."""
    with get_client(sync_client=True) as c:
        found = c.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[key]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
            ),
            sort=ArtifactSort.CREATED_DESC,
            limit=200,
        )
    return list(reversed(found))


def tables(key: str, flow_run_id: UUID) -> list[list[dict[str, Any]]]:
    """The rows of the steps table `key` at each update the run made, oldest first.

    The table is one artifact updated in place: its history is the `prefect.artifact.updated`
    events carrying the rows (the first 50), then the artifact as it ended.
    """
    [table] = _versions(key, flow_run_id)  # one table per run, not a version per change
    final = json.loads(table.data) if isinstance(table.data, str) else table.data
    wanted = EventFilter(
        event=EventNameFilter(name=["prefect.artifact.updated"]),
        resource=EventResourceFilter(id=[f"prefect.artifact.{table.id}"]),
        order=EventOrder.ASC,
    )
    deadline, out = time.monotonic() + 30, []
    while time.monotonic() < deadline:  # events are stored asynchronously
        with get_client(sync_client=True) as client:
            events = client.read_events(filter=wanted, limit=50).events  # server max: 50
        out = [json.loads(e.payload["data"]) for e in events if "data" in e.payload]
        if len(out) == 50 or (out and out[-1] == final):
            break
        time.sleep(0.5)  # bounded by the 30 s deadline: the server stores events a moment later
    return [*out, final] if not out or out[-1] != final else out


def final_progress(key: str, flow_run_id: UUID) -> tuple[float, str]:
    """(percent, description) of the run's progress artifact `key` as it ended."""
    found = _versions(key, flow_run_id)
    assert len(found) == 1, f"{key}: one progress artifact, updated in place; got {len(found)}"
    return float(found[0].data), found[0].description or ""


def assert_progressed(
    kind: str, flow_run_id: UUID, steps: list[str], name: str = "", end: float = 100.0
) -> list[list[dict[str, Any]]]:
    """Assert the run moved its progress as it went: several table updates, progress rising.

    Args:
        kind: the artifacts' kind (`release`, `backup`, `dr`, `dr-drill`).
        flow_run_id: the run.
        steps: texts each of which some row of the last table names.
        name: the artifacts' name part (`<namespace>-<app>` for a release).
        end: where the progress artifact must end (100, or where a failure left it).

    Returns:
        Every version's rows, oldest first.
    """
    suffix = f"-{name}" if name else ""
    versions = tables(f"{kind}-steps{suffix}", flow_run_id)
    assert len(versions) >= 3, f"only {len(versions)} updates of the steps table"
    seen = [max(row["progress"] for row in rows) for rows in versions]
    assert seen == sorted(seen) and seen[0] < seen[-1], seen
    assert len(set(seen)) >= 3, f"progress moved only through {sorted(set(seen))}"
    assert seen[-1] == end, seen
    named = [row["step"] for row in versions[-1]]
    for step in steps:
        assert any(step in n for n in named), f"no row names {step!r}: {named}"
    assert set(versions[-1][0]) == {"step", "state", "detail", "seconds", "progress"}
    percent, _ = final_progress(f"{kind}-progress{suffix}", flow_run_id)
    assert percent == end
    return versions
