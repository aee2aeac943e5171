"""Background analyses during a human pause: a bad verdict answers the pause with abort."""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from uuid import UUID

from prefect import resume_flow_run
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout, NotPausedError
from prefect.futures import PrefectFuture
from prefect.logging import get_logger

from core.release.decisions import Choice
from core.release.observed import Outcome

WATCH_SECONDS = 1.0  # how often the watcher looks at the background futures (in memory)
logger = get_logger("kyb.background")


def finished(future: PrefectFuture) -> bool:
    """Whether a submitted task has ended.

    for the thread-pool runner the flows use, without an API call (its wrapped concurrent future
    knows), else from the task run's state.
    """
    wrapped = getattr(future, "wrapped_future", None)
    if isinstance(wrapped, concurrent.futures.Future):
        return wrapped.done()
    return future.state.is_final()


def bad_verdict(background: Mapping[str, tuple[Any, PrefectFuture]]) -> tuple[str, str] | None:
    """(key, why) of the first finished background analysis that did not succeed, else None.

    Only futures already finished are read, so this never waits.
    """
    for key, (_, future) in background.items():
        if not finished(future):
            continue
        try:
            verdict = future.result()
        except Exception as exc:  # the analysis task itself failed: not a success either
            return key, f"the analysis task failed ({type(exc).__name__})"
        if verdict.outcome is not Outcome.SUCCESSFUL:
            return key, f"ended {verdict.outcome}: {verdict.reason}"
    return None


Check = Callable[[], "tuple[str, str] | None"]  # (who decided, why) once the pause must end


def _watch(run_id: UUID, check: Check, stop: threading.Event) -> None:
    found = None
    while not stop.wait(WATCH_SECONDS):
        found = found or check()
        if found is None:
            continue
        who, why = found
        answer = {"choice": Choice.ABORT.value, "decided_by": who, "reason": why[:500]}
        try:
            resume_flow_run(run_id, run_input=answer)
            logger.info("answered the pause with abort: %s: %s", who, why[:200])
            return
        except NotPausedError:
            continue  # not paused yet (or already answered): look again until stopped
        except FlowPauseTimeout:
            return


@contextlib.contextmanager
def abort_pause_when(check: Check) -> Iterator[None]:
    """While the body waits for a human, answer its pause with abort once `check` says why.

    `check` is called every WATCH_SECONDS from a watcher thread; the answer is the same typed
    input a human would send through the UI, decided by whom `check` names. Nothing is watched
    outside a flow run.
    """
    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        yield
        return
    stop = threading.Event()
    watcher = threading.Thread(
        target=_watch, args=(ctx.flow_run.id, check, stop), name="pause-watch", daemon=True
    )
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join(timeout=10)


@contextlib.contextmanager
def abort_pause_on_bad_verdict(
    background: Mapping[str, tuple[Any, PrefectFuture]],
) -> Iterator[None]:
    """While the body waits for a human, abort the pause if a background analysis ends badly.

    Argo aborts a paused rollout as soon as its background analysis fails, so a release waiting
    for a human must not wait on a verdict that has already condemned it. Nothing is watched when
    no background analysis runs.
    """
    if not background:
        yield
        return

    def check() -> tuple[str, str] | None:
        found = bad_verdict(background)
        return None if found is None else (f"{found[0]} analysis", found[1])

    with abort_pause_when(check):
        yield
