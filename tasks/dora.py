"""The pipeline's own release and rollback attempts, read from the Prefect API as DORA facts.

Every attempt is in the labels of the run that made it (core/delivery/record.py), whichever flow
that was: a delivery, the release deployment, the CLI, a rollback. Those runs carry the tag
RECORD_TAG, so only they are read.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterEndTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort

from core.delivery.dora import Kind, Outcome, RunFact
from core.delivery.record import RECORD_TAG, Attempt, Result, attempts_from
from tasks import RETRIES

PAGE = 200  # the Prefect server's default (and maximum) page size
OPEN = [StateType.RUNNING, StateType.PAUSED, StateType.PENDING]  # attempts may have ended inside
OUTCOMES = {  # a release whose checks failed after it was deployed, and is a failed change
    Result.SUCCEEDED: Outcome.SUCCEEDED,
    Result.CHECKS_FAILED: Outcome.SUCCEEDED,
    Result.CRASHED: Outcome.CRASHED,
}


def fact_of(attempt: Attempt) -> RunFact | None:
    """The DORA fact of an attempt that ended (None while it runs)."""
    if attempt.ended is None or attempt.result is Result.RUNNING:
        return None
    return RunFact(
        kind=Kind.ROLLBACK if attempt.kind == "rollback" else Kind.RELEASE,
        app=attempt.app,
        environment=attempt.environment,
        started=attempt.started,
        ended=attempt.ended,
        outcome=OUTCOMES.get(attempt.result, Outcome.FAILED),
        commit_time=attempt.commit_time,
        image=attempt.image,
        commit=attempt.commit,
        run_id=attempt.run_id,
        result=str(attempt.result),
        strategy=attempt.strategy,
    )


def attempts_of(runs: Iterable[FlowRun]) -> list[Attempt]:
    """Every attempt the runs' labels record (a run over with one still running: crashed)."""
    found = []
    for run in runs:
        final = run.state is not None and run.state.is_final()
        found += attempts_from(run.labels or {}, final, run.end_time, str(run.id))
    return found


@task(name="read-run-facts", cache_policy=NO_CACHE, **RETRIES)
def facts_from_prefect(since: datetime, until: datetime, app: str = "") -> list[RunFact]:
    """Facts for the attempts recorded by runs that ended between since and until, or still run.

    Args:
        since: start of the window (UTC).
        until: end of the window (UTC).
        app: only this app's attempts ("" for every app).
    """
    with get_client(sync_client=True) as client:
        runs = recorded_runs(client, since, until)
    facts = [fact_of(a) for a in attempts_of(runs) if not app or a.app == app]
    return [f for f in facts if f is not None]


def recorded_runs(
    client: SyncPrefectClient, since: datetime, until: datetime, include_open: bool = True
) -> list[FlowRun]:
    """The runs tagged RECORD_TAG that ended between since and until (and those not over yet)."""
    tagged = FlowRunFilterTags(all_=[RECORD_TAG])
    ended = FlowRunFilter(tags=tagged, end_time=FlowRunFilterEndTime(after_=since, before_=until))
    by_id = {r.id: r for r in _pages(client, ended)}
    if include_open:
        by_id |= {r.id: r for r in open_runs(client)}
    return list(by_id.values())


def open_runs(client: SyncPrefectClient, states: list[StateType] | None = None) -> list[FlowRun]:
    """The runs tagged RECORD_TAG that are not over yet (running, paused, pending)."""
    where = FlowRunFilter(
        tags=FlowRunFilterTags(all_=[RECORD_TAG]),
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=states or OPEN)),
    )
    return _pages(client, where)


def _pages(client: SyncPrefectClient, where: FlowRunFilter) -> list[FlowRun]:
    runs: list[FlowRun] = []
    while True:
        page = client.read_flow_runs(
            flow_run_filter=where, sort=FlowRunSort.START_TIME_ASC, limit=PAGE, offset=len(runs)
        )
        runs += page
        if len(page) < PAGE:
            return runs
