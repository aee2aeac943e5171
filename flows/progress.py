"""Progress of a long run: a progress artifact moved in place and a table artifact of its steps."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from prefect.artifacts import create_progress_artifact, create_table_artifact
from prefect.client.schemas.actions import ArtifactUpdate

from core.names import artifact_key
from core.recovery.progress import Stages, velero_progress
from flows.artifact_sender import ArtifactSender, new_artifact

RUNNING, DONE, FAILED = "running", "done", "failed"


@dataclass
class Step:
    """One row of the steps table: what, how it stands, and since when."""

    step: str
    state: str
    detail: str
    started: float
    ended: float | None = None
    percent: float = 0.0  # the run's progress when this row last changed

    def row(self, now: float) -> dict[str, Any]:
        """The table row: step, state, detail, elapsed seconds, progress."""
        end = now if self.ended is None else self.ended
        return {
            "step": self.step,
            "state": self.state,
            "detail": self.detail,
            "seconds": round(end - self.started, 1),
            "progress": self.percent,
        }


class Progress:
    """The progress artifact `<kind>-progress-<name>` and the table `<kind>-steps-<name>`.

    Both are created at the first move and updated in place (by id) after, so a run shows one
    of each: the table whenever a step starts, ends or says something new, never when nothing
    changed (each update is a `prefect.artifact.updated` event carrying the rows). Progress never
    goes back: a failure leaves it where the run got to. Updates go out from a thread of their
    own (flows/artifact_sender.py), the newest first; the run's end (`finish`, a failed step)
    waits for them.
    """

    def __init__(
        self, kind: str, name: str = "", title: str = "", stages: Stages | None = None
    ) -> None:
        """Name the artifacts.

        Args:
            kind: what runs (`release`, `backup`, `dr`, `dr-drill`).
            name: which one (a namespace and app); sanitised into the keys.
            title: how the descriptions start (default: kind and name).
            stages: the run's weighted stages, for `stage()`.
        """
        self.key = artifact_key(kind, "progress", name)
        self.table_key = artifact_key(kind, "steps", name)
        self.title = title or " ".join(p for p in (kind, name) if p)
        self.stages = stages
        self.id: Any = None
        self.table_id: Any = None
        self.percent = 0.0
        self.steps: list[Step] = []
        self._said: tuple[float, str] | None = None
        self._shown: list[tuple[str, str, str, float]] | None = None
        self.sender = ArtifactSender()
        self.reports = ArtifactSender()  # a thread of its own: sent while the last moves are

    def start(self, step: str, detail: str = "", percent: float | None = None) -> Step:
        """Add a running step (a new row), moving the progress to `percent` if given."""
        entry = Step(step, RUNNING, detail, time.monotonic())
        self.steps.append(entry)
        self._publish(entry, percent)
        return entry

    def next(
        self, step: str, detail: str = "", percent: float | None = None, state: str = RUNNING
    ) -> Step:
        """End the running last step (its successor has begun) and add `step`, published once.

        A `step` added in a state other than running is over as it is added (a failure, an end).
        """
        now = time.monotonic()
        if self.steps and self.steps[-1].state == RUNNING:
            self.steps[-1].state, self.steps[-1].ended = DONE, now
        entry = Step(step, state, detail, now, None if state == RUNNING else now)
        self.steps.append(entry)
        self._publish(entry, percent)
        return entry

    def note(
        self, entry: Step, detail: str, percent: float | None = None, state: str | None = None
    ) -> None:
        """Say something new about a step (published only if it is new), or that it failed."""
        entry.detail, entry.state = detail, state or entry.state
        self._publish(entry, percent)

    def end(
        self,
        entry: Step,
        detail: str | None = None,
        percent: float | None = None,
        state: str = DONE,
    ) -> None:
        """End a step as `state` (done or failed), with its last word."""
        entry.state, entry.ended = state, time.monotonic()
        if detail is not None:
            entry.detail = detail
        self._publish(entry, percent)

    def finish(self, detail: str) -> None:
        """The run is done: a last row, and 100 percent."""
        self.next("done", detail, 100.0, DONE)
        self.flush()  # the run's end: what it shows last must be on the server

    @contextmanager
    def step(
        self, name: str, detail: str = "", at: float | None = None, to: float | None = None
    ) -> Iterator[Step]:
        """A step from `at` to `to` percent: done when the block ends, failed if it raises."""
        entry = self.start(name, detail, at)
        try:
            yield entry
        except Exception as exc:
            self.end(entry, f"{type(exc).__name__}: {exc}"[:300], state=FAILED)
            raise
        self.end(entry, percent=to, state=DONE if entry.state == RUNNING else entry.state)

    def flush(self) -> None:
        """Wait until the server shows the newest progress and table (and the report)."""
        self.sender.flush()
        self.reports.flush()

    def report(self, key: str, markdown: str, description: str) -> None:
        """The run's markdown report `key`, created from a thread; `finish` waits for it."""
        self.reports.create(key, new_artifact(key, "markdown", markdown, description))

    def stage(self, name: str, detail: str = "", counted: bool = False) -> Any:
        """`step()` over one of the run's weighted stages (its percent from `stages`).

        A `counted` stage ends where its counts (Velero's items, Deployments) took it, not at
        its end: a backup Velero refused stays where it was.
        """
        if self.stages is None:
            raise ValueError(f"{self.title}: no stages to take {name!r} from")
        at, to = self.stages.percent(name), self.stages.percent(name, 1.0)
        return self.step(name, detail, at, None if counted else to)

    def within(self, name: str, fraction: float) -> float:
        """The percent `fraction` of the way through the weighted stage `name`."""
        if self.stages is None:
            raise ValueError(f"{self.title}: no stages to take {name!r} from")
        return self.stages.percent(name, fraction)

    def items(self, entry: Step, counter: str, verb: str) -> Callable[[dict[str, Any]], None]:
        """A watch callback: Velero's own progress of a Backup or Restore moves `entry`.

        Args:
            entry: the running step, one of the weighted stages (its name).
            counter: `itemsBackedUp` or `itemsRestored` (see core.recovery.progress).
            verb: how the detail says it (`backed up`, `restored`).
        """

        def seen(obj: dict[str, Any]) -> None:
            found = velero_progress(obj, counter)
            self.note(entry, found.describe(verb), self.within(entry.step, found.share))

        return seen

    def counter(self, entry: Step, what: str) -> Callable[[int, int, str], None]:
        """A callback `(done, total, last)` that moves `entry`, a weighted stage, by counts."""

        def seen(done: int, total: int, last: str) -> None:
            share = done / total if total else 1.0
            self.note(
                entry, f"{done} of {total} {what} (last: {last})", self.within(entry.step, share)
            )

        return seen

    def _publish(self, entry: Step, percent: float | None) -> None:
        if percent is not None:
            self.percent = max(self.percent, round(min(100.0, percent), 1))
        entry.percent, entry.detail = self.percent, entry.detail[:300]
        text = f"{self.title}: {entry.step}" + (f": {entry.detail}" if entry.detail else "")
        said = (self.percent, text[:500])
        if said != self._said:
            self._said = said
            if self.id is None:
                self.id = create_progress_artifact(self.percent, key=self.key, description=said[1])
            else:
                self.sender.want(self.id, ArtifactUpdate(data=self.percent, description=said[1]))
        shown = [(s.step, s.state, s.detail, s.percent) for s in self.steps]
        if shown != self._shown:
            self._shown = shown
            now = time.monotonic()
            rows = [s.row(now) for s in self.steps]
            about = f"{self.title}: {self.percent:g}%, {entry.step} {entry.state}"[:500]
            if self.table_id is None:
                self.table_id = create_table_artifact(rows, key=self.table_key, description=about)
            else:  # in place: one table per run in the UI, each change an artifact-updated event
                update = ArtifactUpdate(data=json.dumps(rows), description=about)
                self.sender.want(self.table_id, update)
        if entry.state == FAILED:
            self.flush()  # a failure is shown before the run goes on (a rollback) or ends
