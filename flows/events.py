"""Prefect events for each step of a release or rollback, so the Event Feed shows its life.

Events are named `kyb.<kind>.<what>` (kind: release or rollback), about the resource
`kyb.app.<environment>.<app>` with labels `kyb.app`, `kyb.environment`, `kyb.namespace`,
`kyb.strategy` and `kyb.revision` (the image's digest or tag); Prefect relates each to its flow
run. What: started, step (each action), paused (a human pause), promoted or aborted (the human's
answer), then completed, rolled-back, failed, or checks-failed. Automations match on them
(prefect.yaml's `notify-paused-releases`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from prefect.events import emit_event
from prefect.logging import get_logger

from core.delivery.record import Attempt, Result
from core.release.actions import Pause
from core.release.decisions import Choice, Decision

ENDED = {
    Result.SUCCEEDED: "completed",
    Result.ROLLED_BACK: "rolled-back",
    Result.ABORTED: "rolled-back",
    Result.CHECKS_FAILED: "checks-failed",
    Result.FAILED: "failed",
    Result.REFUSED: "refused",
}
logger = get_logger("kyb.events")
_attempt: ContextVar[Attempt | None] = ContextVar("kyb_attempt", default=None)


@contextmanager
def about(attempt: Attempt) -> Iterator[None]:
    """The events emitted in the body are about `attempt` (flows/record.py's recorded)."""
    token = _attempt.set(attempt)
    try:
        yield
    finally:
        _attempt.reset(token)


def resource(attempt: Attempt) -> dict[str, str]:
    """The event resource of an attempt: the app in its environment."""
    return {
        "prefect.resource.id": f"kyb.app.{attempt.environment}.{attempt.app}",
        "prefect.resource.name": attempt.app,
        "kyb.app": attempt.app,
        "kyb.environment": attempt.environment,
        "kyb.namespace": attempt.namespace,
        "kyb.strategy": attempt.strategy or "-",
        "kyb.revision": attempt.image.rpartition("@")[2] or attempt.image.rpartition(":")[2] or "-",
    }


def emit(what: str, payload: dict[str, Any] | None = None, attempt: Attempt | None = None) -> None:
    """Emit `kyb.<kind>.<what>` about the attempt being recorded (nothing outside one).

    Events go out through Prefect's background worker; one that cannot be sent costs the event,
    never the release.
    """
    attempt = attempt or _attempt.get()
    if attempt is None:
        return
    try:
        emit_event(f"kyb.{attempt.kind}.{what}", resource(attempt), payload=payload or {})
    except Exception as exc:
        logger.warning("could not emit kyb.%s.%s: %s", attempt.kind, what, type(exc).__name__)


def paused(pause: Pause) -> None:
    """A release waits for a person."""
    emit("paused", {"reason": pause.reason, "timeout_seconds": pause.timeout_seconds})


def decided(decision: Decision) -> None:
    """The person's (or an analysis's) answer to a pause: promoted, or aborted."""
    what = "aborted" if decision.choice is Choice.ABORT else "promoted"
    emit(
        what,
        {
            "choice": str(decision.choice),
            "decided_by": decision.decided_by,
            "reason": decision.reason,
        },
    )


def ended(attempt: Attempt) -> None:
    """How the attempt ended, with its result and cause."""
    what = ENDED.get(attempt.result, str(attempt.result))
    emit(what, {"result": str(attempt.result), "cause": attempt.cause}, attempt)
