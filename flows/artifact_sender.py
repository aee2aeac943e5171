"""Artifacts created and updated from a thread of their own, newest first, so a run never waits."""

from __future__ import annotations

import atexit
import contextvars
import logging
import threading
import time
import weakref
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactCreate, ArtifactUpdate
from prefect.utilities.context import get_task_and_flow_run_ids

from tasks import is_transient

IDLE_SECONDS = 2.0  # the thread ends after this long without work; the next update starts one
FLUSH_SECONDS = 10.0  # how long a run's end waits for its last updates to reach the server
RETRY_SECONDS = 5.0  # between tries while the server cannot be reached
KEEP_SECONDS = 900.0  # how long the newest content waits for a server that cannot be reached
AWAY_FLUSH_SECONDS = 180.0  # how long a run's end waits for a server that is away to come back
SLOW_SECONDS = 2.0  # a send taking longer is a server away: the client retries it inside the call

log = logging.getLogger(__name__)
_live: weakref.WeakSet[ArtifactSender] = weakref.WeakSet()


def new_artifact(key: str, kind: str, data: Any, description: str) -> ArtifactCreate:
    """An artifact of the current flow run (or task run), as Prefect's create_*_artifact makes.

    Raises:
        pydantic.ValidationError: a key Prefect refuses (lowercase letters, digits, dashes).
    """
    task_run_id, flow_run_id = get_task_and_flow_run_ids()
    return ArtifactCreate(
        key=key,
        type=kind,
        data=data,
        description=description,
        flow_run_id=flow_run_id,
        task_run_id=task_run_id,
    )


class ArtifactSender:
    """Keeps the newest wanted content of each artifact and sends it from a background thread.

    A run's progress moves far more often than a person can read it (every watch event of a
    rollout, every item Velero counts); each move used to be a blocking API call on the run's
    own path (8 ms here, more on a busy server). Here the caller only records what it wants the
    artifact to say; the thread sends the newest of it, and an update superseded before it was
    sent is never sent. `flush()` waits until the server holds the newest of each: a run calls
    it at its end, and at the process's exit what is left is flushed too. While the server cannot
    be reached (restarting, upgrading), the newest content is kept and sent once it answers
    again, for up to KEEP_SECONDS: the table shows where the release got to, not where it was
    when the server went away.

    An artifact can be created the same way (`create`): the thread creates it as it was given,
    then sends the newest content wanted under the same handle as an update. A run's report is
    created so while its last progress moves are sent (flows/progress.py `report`).
    """

    def __init__(self) -> None:
        self._wanted: dict[Any, ArtifactUpdate] = {}
        self._busy = False
        self._thread: threading.Thread | None = None
        self._cond = threading.Condition()
        self._failing_since: float | None = None  # the server has not answered since then
        self._sending_since = 0.0  # when the send in progress began
        self._new: dict[Any, ArtifactCreate] = {}  # handles to create at their first send
        self._ids: dict[Any, Any] = {}  # handle -> the server's id, once created
        _live.add(self)

    def want(self, artifact_id: Any, update: ArtifactUpdate) -> None:
        """Record the artifact's newest content; the thread sends it soon."""
        with self._cond:
            self._wanted[artifact_id] = update
            if self._thread is None:
                context = contextvars.copy_context()  # the caller's Prefect settings (API, auth)
                self._thread = threading.Thread(
                    target=context.run, args=(self._run,), name="artifact-sender", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def create(self, handle: Any, artifact: ArtifactCreate) -> None:
        """Create `artifact` from the thread; `want(handle, ...)` after that updates it.

        The artifact (its key, type, run) is validated here, in the caller: a bad one raises
        now, not in the thread.
        """
        with self._cond:
            self._new[handle] = artifact
        self.want(handle, ArtifactUpdate(data=artifact.data, description=artifact.description))

    def flush(self, timeout: float = FLUSH_SECONDS) -> bool:
        """Wait until everything wanted was sent (False: `timeout` passed first).

        While the server is away, up to AWAY_FLUSH_SECONDS: the run cannot record its end
        without the server either, and its last progress is what a person looks at. Away means
        a send failed and none succeeded since, or the send in progress has taken longer than
        SLOW_SECONDS (Prefect's client retries a refused connection inside the call, for more
        than a minute, before it raises).
        """
        start = time.monotonic()
        with self._cond:
            while self._wanted or self._busy:
                now = time.monotonic()
                stuck = self._busy and now - self._sending_since > SLOW_SECONDS
                away = self._failing_since is not None or stuck
                left = start + (max(timeout, AWAY_FLUSH_SECONDS) if away else timeout) - now
                if left <= 0:
                    return False
                self._cond.wait(min(left, SLOW_SECONDS))  # wakes at once when a send ends
            return True

    def _take(self) -> tuple[Any, ArtifactUpdate] | None:
        with self._cond:
            self._busy = False
            self._cond.notify_all()
            if not self._cond.wait_for(lambda: self._wanted, IDLE_SECONDS):
                self._thread = None
                return None
            self._busy, self._sending_since = True, time.monotonic()
            artifact_id = next(iter(self._wanted))
            return artifact_id, self._wanted.pop(artifact_id)

    def _again(self, artifact_id: Any, update: ArtifactUpdate) -> None:
        """Want `update` again unless newer content came meanwhile; wait before the next try."""
        with self._cond:
            self._wanted.setdefault(artifact_id, update)
            self._busy = False
            self._cond.notify_all()
        time.sleep(RETRY_SECONDS)  # bounded: at most KEEP_SECONDS of tries in all

    def _run(self) -> None:
        try:
            with get_client(sync_client=True) as client:
                while (job := self._take()) is not None:
                    self._send(client, *job)
        finally:  # ended by a fault (a client that cannot start): the next want starts a thread
            with self._cond:
                if self._thread is threading.current_thread():  # else it ended idle, in _take
                    self._thread, self._busy = None, False
                    self._cond.notify_all()

    def _send(self, client: Any, artifact_id: Any, update: ArtifactUpdate) -> None:
        try:
            new = self._new.get(artifact_id)
            if new is not None:  # created as it was given (a table's history is its create and
                self._ids[artifact_id] = client.create_artifact(new).id  # its updates' events)
                del self._new[artifact_id]
            if new is None or (update.data, update.description) != (new.data, new.description):
                client.update_artifact(self._ids.get(artifact_id, artifact_id), update)
            self._failing_since = None
        except Exception as exc:  # a lost progress line must not fail the release
            now = time.monotonic()
            if self._failing_since is None:
                self._failing_since = now
            if is_transient(exc) and now - self._failing_since < KEEP_SECONDS:
                if self._failing_since == now:
                    log.warning(
                        "progress artifact %s: server unreachable (%s), kept", artifact_id, exc
                    )
                self._again(artifact_id, update)
                return
            log.warning("progress artifact %s not updated: %s", artifact_id, exc)
            if not is_transient(exc):  # the server answered
                self._failing_since = None


@atexit.register
def _flush_all() -> None:
    for sender in list(_live):
        sender.flush()
