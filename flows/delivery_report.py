"""The delivery report artifact: what shipped and how each stage went, linked to its runs.

The delivery times its stages (CI, then per environment its gates, release and checks); at the
end the report reads the run's task runs, subflow runs and artifacts from the Prefect API and
puts each under the stage it happened in, as links into the UI, with the commit, the image
digest and the outcome at the top. The first lines and the two plain tables keep the form
`kyb delivery get` reads (cli/reports.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)
from prefect.context import FlowRunContext
from prefect.logging import get_logger
from prefect.settings import PREFECT_UI_URL

REPORT_PREFIX = "delivery-"  # the delivery report artifact: delivery-<app>
PAGE = 200
NOTE_CHARS = 200  # why the delivery stopped, at the top; the run's state message has all of it
logger = get_logger("kyb.delivery")


@dataclass
class Phase:
    """One stage of a delivery (CI, an environment's gates, release or checks): when, how."""

    name: str
    started: datetime
    ended: datetime | None = None
    outcome: str = "running"
    note: str = ""
    ok: bool = True  # False once it raised: the delivery stopped here
    links: list[str] = field(default_factory=list)  # filled in from the API at the end

    def holds(self, when: datetime | None) -> bool:
        """Whether something that started at `when` ran in this stage."""
        return when is not None and self.started <= when <= (self.ended or datetime.now(UTC))


class Phases:
    """The stages of one delivery, in order."""

    def __init__(self) -> None:
        self.items: list[Phase] = []

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[Phase]:
        """Time the body as stage `name`: passed, unless it raised (failed) or said otherwise."""
        st = Phase(name, datetime.now(UTC))
        self.items.append(st)
        try:
            yield st
        except BaseException as exc:
            st.ok = False
            st.outcome = "failed" if st.outcome in ("running", "passed") else st.outcome
            st.note = st.note or f"{type(exc).__name__}: {exc}"[:200]
            raise
        else:
            st.outcome = "passed" if st.outcome == "running" else st.outcome
        finally:
            st.ended = datetime.now(UTC)


def _url(path: str) -> str:
    ui = (PREFECT_UI_URL.value() or "").rstrip("/")
    return f"{ui}/{path}" if ui else ""


def _link(text: str, path: str) -> str:
    url = _url(path)
    return f"[{text}]({url})" if url else f"`{text}`"


def _when(obj: Any) -> datetime | None:
    return getattr(obj, "start_time", None) or getattr(obj, "created", None)


def _place(stages: list[Phase], when: datetime | None, link: str) -> None:
    for st in stages:
        if st.holds(when):
            st.links.append(link)
            return


def link_runs(stages: list[Phase], run_id: UUID) -> None:
    """Put the run's task runs, subflow runs and artifacts under the stage each ran in."""
    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run_id])
            ),
            limit=PAGE,
        )
        owners = [run_id, *(c.id for c in children)]
        tasks = client.read_task_runs(
            task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=owners)),
            limit=PAGE,
        )
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=owners)),
            limit=PAGE,
        )
    for child in children:
        _place(stages, _when(child), _link(f"{child.name} (subflow)", f"runs/flow-run/{child.id}"))
    grouped: dict[tuple[int, str], list[Any]] = {}  # (stage, task name) -> its runs, in order
    for task in sorted(tasks, key=lambda t: _when(t) or datetime.now(UTC)):
        index = next((i for i, st in enumerate(stages) if st.holds(_when(task))), None)
        if index is not None:  # task run names end in a short random suffix
            grouped.setdefault((index, task.name.rsplit("-", 1)[0]), []).append(task)
    for (index, name), runs in grouped.items():
        times = f" x{len(runs)}" if len(runs) > 1 else ""
        stages[index].links.append(_link(name, f"runs/task-run/{runs[-1].id}") + times)
    for art in sorted(artifacts, key=lambda a: _when(a) or datetime.now(UTC)):
        if art.key and art.key.startswith(REPORT_PREFIX):
            continue
        text = art.key or art.type or "artifact"
        _place(stages, _when(art), _link(text, f"artifacts/artifact/{art.id}"))


def publish(
    app: str,
    commit: str,
    branch: str,
    image: str,
    ci_seconds: dict[str, float],
    envs: tuple[str, ...],
    done: dict[str, Any],
    stages: Phases,
) -> None:
    """The `delivery-<app>` markdown artifact (links read from the API; never fails the run)."""
    failed = next((st for st in stages.items if not st.ok), None)
    outcome = f"FAILED at {failed.name}: {failed.outcome}" if failed else "delivered"
    ctx = FlowRunContext.get()
    if ctx is not None and ctx.flow_run is not None:
        try:
            link_runs(stages.items, ctx.flow_run.id)
        except Exception as exc:  # the report still says what happened, without links
            logger.warning("delivery report without links: %s", type(exc).__name__)
    lines = [
        f"# Delivery of `{app}` at `{commit[:12]}` ({branch}): {outcome}",
        "",
        f"Image `{image or '-'}`",
        "",
        f"Commit `{commit}`" + (f", digest `{image.rpartition('@')[2]}`" if "@" in image else ""),
        "",
        "| stage | outcome | seconds | runs and artifacts |",
        "|---|---|---|---|",
    ]
    if failed is not None and failed.note:  # the whole reason is the run's state message
        why = failed.note if len(failed.note) <= NOTE_CHARS else failed.note[: NOTE_CHARS - 3]
        lines[2:2] = [f"Why: {why}{'...' if why != failed.note else ''}", ""]
    for st in stages.items:
        secs = round(((st.ended or datetime.now(UTC)) - st.started).total_seconds(), 1)
        links = ", ".join(st.links) or "-"
        row = [st.name, f"**{st.outcome}**" if not st.ok else st.outcome, secs, links]
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in row) + " |")
    lines += ["", "| stage | seconds |", "|---|---|"]
    lines += [f"| {stage} | {secs} |" for stage, secs in ci_seconds.items()]
    lines += ["", "| environment | result | strategy | release |", "|---|---|---|---|"]
    for env in envs:
        got = done.get(env) or {"strategy": "-", "summary": "-"}
        result = "delivered" if env in done else "not delivered"
        lines.append(f"| {env} | {result} | {got['strategy']} | {got['summary']} |")
    create_markdown_artifact("\n".join(lines), key=f"{REPORT_PREFIX}{app}")
