"""The pipeline's own release, rollback and delivery runs, read from the Prefect API as facts."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterEndTime,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
    TaskRunFilter,
    TaskRunFilterId,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort

from core.delivery.dora import Kind, Outcome, RunFact, environment_of
from tasks import RETRIES

FLOWS = ("release", "rollback", "delivery")
OUTCOMES = {
    StateType.COMPLETED: Outcome.SUCCEEDED,
    StateType.FAILED: Outcome.FAILED,
    StateType.CRASHED: Outcome.CRASHED,
}  # Scheduled, Running, Paused and Cancelled runs are no facts: nothing was decided
PAGE = 200  # the Prefect server's default (and maximum) page size


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 timestamp as a UTC datetime (naive ones are taken as UTC); None if unusable."""
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, str) and value:
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def fact_from_run(
    flow: str,
    parameters: Mapping[str, Any],
    outcome: Outcome,
    started: datetime,
    ended: datetime,
    environments: Mapping[str, str] | None = None,
    delivery: Mapping[str, Any] | None = None,
    run_id: str = "",
) -> RunFact | None:
    """The fact one finished run stands for, from its flow name and parameters.

    A `release` run names its app, namespace and image in `spec` (or `app`, `image` and
    `environment`, the form of a release into a saved environment); a `rollback` run names `app`
    and `namespace`; a `delivery` run names `app`, `environment` (or `namespace`) and `image`.
    The commit and its time come from the run's own `commit`/`commit_time` parameters, or from
    `delivery`: the parameters of the delivery run the release ran inside.

    Returns:
        The fact, or None when the parameters name no app or no namespace/environment.
    """
    spec = parameters.get("spec") if flow == "release" else parameters
    # A release named by app, image and environment (no spec) reads like a delivery.
    spec = spec if isinstance(spec, Mapping) and spec else parameters
    where = spec.get("namespace") or spec.get("environment") or parameters.get("environment")
    if not spec.get("app") or not where:
        return None
    lent = {
        **{k: v for k, v in (delivery or {}).items() if v},
        **{k: v for k, v in parameters.items() if v},
    }
    return RunFact(
        kind=Kind.ROLLBACK if flow == "rollback" else Kind.RELEASE,
        app=str(spec["app"]),
        environment=environment_of(str(where), environments),
        started=started,
        ended=ended,
        outcome=outcome,
        commit_time=parse_time(lent.get("commit_time")),
        image=str(spec.get("image") or lent.get("image") or ""),
        commit=str(lent.get("commit") or ""),
        run_id=run_id,
    )


@task(name="read-run-facts", cache_policy=NO_CACHE, **RETRIES)
def facts_from_prefect(
    since: datetime,
    until: datetime,
    environments: Mapping[str, str] | None = None,
    app: str = "",
) -> list[RunFact]:
    """Facts for the release, rollback and delivery runs that finished between since and until.

    Completed runs succeeded, Failed runs failed (a release: rolled back automatically), Crashed
    runs crashed. A release run inside a delivery run (a subflow, or started with
    run_deployment) takes the delivery's commit and commit time, and the delivery run is then
    no fact of its own; a delivery run with no release run inside counts as a release itself.

    Args:
        since: start of the window (UTC).
        until: end of the window (UTC).
        environments: namespace (or environment name) -> environment; by default a name ending
            in "production" is production (see core.delivery.dora.environment_of).
        app: only this app's runs ("" for every app).
    """
    with get_client(sync_client=True) as client:
        names = {f.id: f.name for f in client.read_flows(flow_filter=_flows())}
        runs = _finished_runs(client, since, until)
        parents = _parents(client, [r for r in runs if names.get(r.flow_id) == "release"])
    lenders = {p.id: p for p in parents.values() if names.get(p.flow_id) == "delivery"}
    facts = []
    for run in runs:
        flow = names.get(run.flow_id, "")
        if flow == "delivery" and run.id in lenders:
            continue  # its release runs are the facts
        parent = lenders.get(_parent_id(run, parents))
        ended = run.end_time or until
        fact = fact_from_run(
            flow,
            run.parameters,
            OUTCOMES[run.state_type],
            run.start_time or ended,
            ended,
            environments,
            parent.parameters if parent else None,
            str(run.id),
        )
        if fact and (not app or fact.app == app):
            facts.append(fact)
    return facts


def _flows() -> FlowFilter:
    return FlowFilter(name=FlowFilterName(any_=list(FLOWS)))


def _finished_runs(client: SyncPrefectClient, since: datetime, until: datetime) -> list[FlowRun]:
    """Every run of FLOWS that reached a final state we count between since and until."""
    where = FlowRunFilter(
        end_time=FlowRunFilterEndTime(after_=since, before_=until),
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=list(OUTCOMES))),
    )
    runs: list[FlowRun] = []
    while True:
        page = client.read_flow_runs(
            flow_filter=_flows(),
            flow_run_filter=where,
            sort=FlowRunSort.START_TIME_ASC,
            limit=PAGE,
            offset=len(runs),
        )
        runs += page
        if len(page) < PAGE:
            return runs


def _parents(client: SyncPrefectClient, runs: list[FlowRun]) -> dict[UUID, FlowRun]:
    """The flow runs that `runs` ran inside, by the parent task run's id."""
    task_ids = [r.parent_task_run_id for r in runs if r.parent_task_run_id]
    owners: dict[UUID, UUID] = {}
    for i in range(0, len(task_ids), PAGE):
        chunk = TaskRunFilter(id=TaskRunFilterId(any_=task_ids[i : i + PAGE]))
        found = client.read_task_runs(task_run_filter=chunk)
        owners |= {t.id: t.flow_run_id for t in found if t.flow_run_id}
    ids = list(set(owners.values()))
    by_id: dict[UUID, FlowRun] = {}
    for i in range(0, len(ids), PAGE):
        chunk = FlowRunFilter(id=FlowRunFilterId(any_=ids[i : i + PAGE]))
        by_id |= {r.id: r for r in client.read_flow_runs(flow_run_filter=chunk)}
    return {tid: by_id[fid] for tid, fid in owners.items() if fid in by_id}


def _parent_id(run: FlowRun, parents: dict[UUID, FlowRun]) -> UUID | None:
    """The id of the flow run `run` ran inside, if known."""
    parent = parents.get(run.parent_task_run_id) if run.parent_task_run_id else None
    return parent.id if parent else None
