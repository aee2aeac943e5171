"""What the metrics exporter reads from the Prefect API: record, backups, drills, pauses.

The record's attempts are kept in a RecordCache: the first read takes every recorded run there
is (the counters count since the beginning), later reads only the runs that ended since the last
one, and the runs not over yet.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.exceptions import ObjectNotFound

from core.delivery.dora import RunFact
from core.delivery.record import Attempt, Result, attempts_from, slug
from tasks.dora import attempts_of, fact_of, open_runs, recorded_runs

BACKUP_FLOW, DRILL_FLOW, DELIVERY_FLOW = "backup", "dr-drill", "delivery"
ENV_SLUG = "kyb-environment"
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
SLACK = timedelta(minutes=5)  # runs that ended just before the last read, recorded late
ENDED = [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED]
RECENT_DELIVERIES = 200  # deliveries looked through for failures in a row (newest first)


class RecordCache:
    """Every attempt ever recorded, read incrementally (runs are final once they ended)."""

    def __init__(self) -> None:
        self.final: dict[UUID, list[Attempt]] = {}
        self.read_until: datetime | None = None

    def refresh(self, client: SyncPrefectClient, now: datetime) -> list[Attempt]:
        """Read what ended since the last refresh, and the runs still going; every attempt."""
        since = self.read_until - SLACK if self.read_until else EPOCH
        for run in recorded_runs(client, since, now, include_open=False):
            self.final[run.id] = attempts_of([run])
        going = open_runs(client)
        self.read_until = now
        return [a for found in self.final.values() for a in found] + attempts_of(going)


@dataclass(frozen=True)
class Paused:
    """A release run waiting at a human pause, and when its pause should have ended."""

    app: str
    environment: str
    run: str
    timeout: datetime


@dataclass
class Snapshot:
    """What one read of the Prefect API found; `facts` are those that ended since..until."""

    since: datetime
    until: datetime
    facts: list[RunFact]
    attempts: list[Attempt] = field(default_factory=list)  # every one ever recorded
    environments: list[str] = field(default_factory=list)  # the saved Environments' names
    last_backup: datetime | None = None
    last_drill: tuple[datetime, bool] | None = None  # when the last drill ended, and if it passed
    paused: list[Paused] = field(default_factory=list)
    failing: dict[str, int] = field(default_factory=dict)  # app -> deliveries failed in a row


def read_snapshot(
    days: float, now: datetime | None = None, cache: RecordCache | None = None
) -> Snapshot:
    """Read the record, backups, drills, pauses and deliveries for the last `days` days."""
    until = now or datetime.now(UTC)
    since = until - timedelta(days=days)
    cache = cache or RecordCache()
    with get_client(sync_client=True) as client:
        attempts = cache.refresh(client, until)
        backup = _last(client, BACKUP_FLOW, [StateType.COMPLETED])
        drill = _last(
            client, DRILL_FLOW, [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED]
        )
        paused = _paused(client)
        failing = _failing(client)
        environments = _environments(client)
    facts = [f for a in attempts if (f := fact_of(a)) is not None and f.ended >= since]
    return Snapshot(
        since=since,
        until=until,
        facts=facts,
        attempts=attempts,
        environments=environments,
        last_backup=backup.end_time if backup else None,
        last_drill=(drill.end_time, drill.state_type == StateType.COMPLETED) if drill else None,
        paused=paused,
        failing=failing,
    )


def _runs_of(
    client: SyncPrefectClient, flow: str, states: list[StateType], limit: int
) -> list[FlowRun]:
    return client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=[flow])),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=states))
        ),
        sort=FlowRunSort.END_TIME_DESC,
        limit=limit,
    )


def _last(client: SyncPrefectClient, flow: str, states: list[StateType]) -> FlowRun | None:
    found = _runs_of(client, flow, states, 1)
    return found[0] if found and found[0].end_time else None


def _paused(client: SyncPrefectClient) -> list[Paused]:
    """Recorded runs at a pause, with the app and environment of the attempt that waits."""
    found = []
    for run in open_runs(client, [StateType.PAUSED]):
        timeout = run.state.state_details.pause_timeout if run.state else None
        waiting = [a for a in attempts_from(run.labels or {}, False) if a.result is Result.RUNNING]
        if timeout is None or not waiting:
            continue
        found.append(Paused(waiting[-1].app, waiting[-1].environment, run.name, timeout))
    return found


def _failing(client: SyncPrefectClient) -> dict[str, int]:
    """Per app, how many of its latest finished deliveries failed in a row."""
    streak: dict[str, int] = defaultdict(int)
    done: set[str] = set()
    for run in _runs_of(client, DELIVERY_FLOW, ENDED, RECENT_DELIVERIES):
        app = str((run.parameters or {}).get("app") or "")
        if not app or app in done:
            continue
        if run.state_type == StateType.COMPLETED:
            done.add(app)
            streak.setdefault(app, 0)
        else:
            streak[app] += 1
    return dict(streak)


def _environments(client: SyncPrefectClient) -> list[str]:
    """The names of the saved Environment blocks (their series exist from the start)."""
    try:
        docs = client.read_block_documents_by_type(ENV_SLUG, include_secrets=False)
    except ObjectNotFound:  # the block type is not registered yet: no Environment saved
        return []
    return sorted({slug(str((d.data or {}).get("name") or d.name)) for d in docs if d.name})
