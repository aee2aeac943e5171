"""What `kyb` reads from and asks of the Prefect API: blocks, release runs, artifacts, resumes."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterName,
    FlowRunFilterParentFlowRunId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import ArtifactSort, FlowRunSort
from prefect.exceptions import ObjectNotFound

from cli.matching import ENV_SLUG, target_of

RECENT_RUNS = 200  # release runs looked through for an app's latest (newest first)


def block_documents(slug: str) -> list[Any]:
    """The saved (named) block documents of block type `slug`, secrets left out."""
    with get_client(sync_client=True) as client:
        docs = client.read_block_documents_by_type(slug, include_secrets=False)
    return sorted((d for d in docs if not d.is_anonymous), key=lambda d: d.name or "")


def block_exists(slug: str, name: str) -> bool:
    """True if a block of type `slug` is saved under `name`."""
    with get_client(sync_client=True) as client:
        try:
            client.read_block_document_by_name(name, slug, include_secrets=False)
        except ObjectNotFound:
            return False
    return True


@functools.lru_cache(maxsize=64)
def environment_namespace(name: str) -> str | None:
    """The namespace of the Environment block `name` ("id:<uuid>" for one named by id)."""
    with get_client(sync_client=True) as client:
        try:
            if name.startswith("id:"):
                doc = client.read_block_document(UUID(name[3:]), include_secrets=False)
            else:
                doc = client.read_block_document_by_name(name, ENV_SLUG, include_secrets=False)
        except (ObjectNotFound, ValueError):
            return None
    return (doc.data or {}).get("namespace")


def flow_runs(
    flow: str,
    states: list[StateType] | None = None,
    limit: int = RECENT_RUNS,
    name: str = "",
    run_id: UUID | None = None,
) -> list[FlowRun]:
    """Runs of the flow named `flow`, newest first; only those in `states`, named, or by id."""
    run_filter = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=states)) if states else None,
        name=FlowRunFilterName(any_=[name]) if name else None,
        id=FlowRunFilterId(any_=[run_id]) if run_id else None,
    )
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow])),
            flow_run_filter=run_filter,
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=limit,
        )


def release_runs(states: list[StateType] | None = None, limit: int = RECENT_RUNS) -> list[FlowRun]:
    """Runs of the flow "release", newest first; only those in `states` when given."""
    return flow_runs("release", states, limit)


def releases_of(
    app: str, namespace: str, states: list[StateType] | None = None, limit: int = RECENT_RUNS
) -> list[FlowRun]:
    """The release runs of `app` in `namespace` among the newest `limit` (newest first)."""
    return [
        run
        for run in release_runs(states, limit)
        if target_of(run.parameters, environment_namespace) == (app, namespace)
    ]


def read_run(run_id: UUID) -> FlowRun | None:
    """The flow run `run_id`, or None."""
    with get_client(sync_client=True) as client:
        found = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
        )
    return found[0] if found else None


def run_artifacts(run_id: UUID) -> list[Any]:
    """The artifacts a flow run made (every version), newest first."""
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])),
            sort=ArtifactSort.CREATED_DESC,
            limit=200,
        )
    return list(found)


def child_runs(run_id: UUID) -> list[tuple[str, FlowRun]]:
    """The subflow runs of a flow run, oldest first, each with its flow's name."""
    with get_client(sync_client=True) as client:
        found = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run_id])
            ),
            sort=FlowRunSort.START_TIME_ASC,
            limit=RECENT_RUNS,
        )
        names = {f: client.read_flow(f).name for f in {r.flow_id for r in found}}
    return [(names[r.flow_id], r) for r in found]


def deployment_exists(name: str) -> bool:
    """True if the deployment `flow/deployment` is on the server."""
    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(name)
        except ObjectNotFound:
            return False
    return True


def follow(
    run_id: UUID, timeout: float, on_change: Callable[[FlowRun], None], poll: float = 2.0
) -> FlowRun:
    """Read the run until it ends or `timeout` passes, calling `on_change` at each new state."""
    deadline = time.monotonic() + timeout
    seen: str | None = None
    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(run_id)
            if run.state_name != seen:
                seen = run.state_name
                on_change(run)
            if (run.state and run.state.is_final()) or time.monotonic() >= deadline:
                return run
            time.sleep(min(poll, max(0.0, deadline - time.monotonic())))  # bounded by timeout
