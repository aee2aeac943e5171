"""The delivery record: what a run deployed, where and how it ended, kept as the run's labels.

Every release and rollback writes its attempt into the labels of the flow run it ran in (the
`release` or `rollback` run, or the `delivery` run that released to staging and production), at
its start and again at its end. The record is what DORA's keys and the metrics count, so the
environment is the one the run deployed to (its Environment block, or the saved Environment
whose namespace it released into), not a guess from a name. Labels are flat strings:

    kyb.app = web                              kyb.commit, kyb.commit_time (a delivery's)
    kyb.release.production.result = rolled_back
    kyb.release.production.namespace / strategy / image / cluster / started / ended / cause

A run that ended while its label still says `running` crashed (nothing could write its end).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from core.release.decisions import Choice, Decision

PREFIX = "kyb"
RECORD_TAG = "kyb-record"  # the tag of every run that recorded an attempt (what DORA reads)
_KEY = re.compile(rf"^{PREFIX}\.(release|rollback)\.([a-z0-9][a-z0-9-]*)\.result$")
CAUSE_CHARS = 200
AUTOMATIC_DEMO = "demo-mode"  # who flows.release.flow.approve_promotions says decided


class Result(StrEnum):
    """How one attempt ended (the exporter's `result` label)."""

    RUNNING = "running"  # written at the start; still there at the run's end: it crashed
    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled_back"  # a failed rollout or analysis rolled it back automatically
    ABORTED = "aborted"  # a person aborted it at a pause, or nobody answered in time
    CHECKS_FAILED = "checks_failed"  # released, then the delivery's post-deployment checks failed
    FAILED = "failed"  # an error stopped it mid-way (the cluster may be half-released)
    CRASHED = "crashed"  # the run died without writing its end
    REFUSED = "refused"  # refused before any write (invalid spec, unknown template): no attempt


ATTEMPT_RESULTS = tuple(r for r in Result if r not in (Result.RUNNING, Result.REFUSED))


@dataclass(frozen=True)
class Attempt:
    """One release or rollback of one app in one environment, as its run recorded it."""

    kind: str  # release or rollback
    app: str
    environment: str
    namespace: str
    result: Result
    started: datetime
    ended: datetime | None = None
    strategy: str = ""
    image: str = ""
    cause: str = ""
    commit: str = ""
    commit_time: datetime | None = None
    run_id: str = ""
    cluster: str = ""  # the saved KYB Kubernetes Cluster block it wrote to ("" if unsaved)


def slug(name: str) -> str:
    """An environment's name as a label segment: lowercase letters, digits and dashes."""
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "unnamed"


def stamp(when: datetime) -> str:
    """A label's time: ISO 8601 in UTC."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds")


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def labels_of(attempt: Attempt) -> dict[str, str]:
    """The run labels that record `attempt` (patched over the run's other labels)."""
    base = f"{PREFIX}.{attempt.kind}.{attempt.environment}"
    out = {
        f"{PREFIX}.app": attempt.app,
        f"{base}.result": str(attempt.result),
        f"{base}.namespace": attempt.namespace,
        f"{base}.started": stamp(attempt.started),
    }
    if attempt.strategy:
        out[f"{base}.strategy"] = attempt.strategy
    if attempt.image:
        out[f"{base}.image"] = attempt.image
    if attempt.cluster:
        out[f"{base}.cluster"] = attempt.cluster
    if attempt.ended is not None:
        out[f"{base}.ended"] = stamp(attempt.ended)
    if attempt.cause:
        out[f"{base}.cause"] = " ".join(attempt.cause.split())[:CAUSE_CHARS]
    return out


def attempts_from(
    labels: Mapping[str, Any], run_final: bool, run_ended: datetime | None = None, run_id: str = ""
) -> list[Attempt]:
    """The attempts a run's labels record.

    An attempt still `running` in a run that is over (`run_final`) crashed at the run's end; one
    refused before any write is no attempt. Labels that do not read are skipped, never guessed.
    """
    found = []
    for key, value in labels.items():
        match = _KEY.match(key)
        if not match or value not in set(Result):
            continue
        kind, env = match.groups()
        base = f"{PREFIX}.{kind}.{env}"
        started = _time(labels.get(f"{base}.started"))
        app = labels.get(f"{PREFIX}.app")
        result = Result(value)
        if result is Result.REFUSED or started is None or not app:
            continue
        ended = _time(labels.get(f"{base}.ended"))
        if result is Result.RUNNING and run_final:
            result, ended = Result.CRASHED, run_ended or started
        found.append(
            Attempt(
                kind=kind,
                app=str(app),
                environment=env,
                namespace=str(labels.get(f"{base}.namespace", "")),
                result=result,
                started=started,
                ended=ended,
                strategy=str(labels.get(f"{base}.strategy", "")),
                image=str(labels.get(f"{base}.image", "")),
                cause=str(labels.get(f"{base}.cause", "")),
                commit=str(labels.get(f"{PREFIX}.commit", "")),
                commit_time=_time(labels.get(f"{PREFIX}.commit_time")),
                run_id=run_id,
                cluster=str(labels.get(f"{base}.cluster", "")),
            )
        )
    return sorted(found, key=lambda a: a.started)


def release_result(ok: bool, decisions: list[Decision]) -> Result:
    """A finished release's result: succeeded, aborted (a person or no answer), or rolled back.

    An abort decided by an analysis (a background analysis answering the pause) or by demo mode
    (which aborts only on missing data) is an automatic rollback, not a person's abort.
    """
    if ok:
        return Result.SUCCEEDED
    for d in decisions:
        automatic = d.decided_by.endswith(" analysis") or d.decided_by == AUTOMATIC_DEMO
        if d.choice is Choice.ABORT and not automatic:
            return Result.ABORTED
    return Result.ROLLED_BACK
