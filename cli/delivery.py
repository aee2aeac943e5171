"""`kyb delivery`: the runs of flow `delivery`, one commit each, and what they delivered."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import typer
from prefect.client.schemas.objects import FlowRun

from cli import prefect_io
from cli.matching import read_result
from cli.output import ExitCode, Output, OutputOption, emit, fail, handled, table
from cli.reports import delivery_report, delivery_row, duration, human_seconds
from flows.delivery_report import REPORT_PREFIX

app = typer.Typer(
    help="Deliveries: one commit through CI and its environments.", no_args_is_help=True
)
DELIVERY_FLOW = "delivery"
RESULT_PREFIX = "release-result-"  # flows/release/flow.py `publish_result`, once per environment
COLUMNS = ("name", "app", "commit", "branch", "environment", "state", "started", "duration")
SCANNED = 200  # delivery runs looked through for --app (newest first)


def row(run: FlowRun, now: datetime) -> dict[str, Any]:
    """One delivery run as a row."""
    return delivery_row(
        str(run.id), run.name, run.state_name, run.parameters, run.start_time, run.end_time, now
    )


@app.command("ls")
@handled
def ls(
    app_name: Annotated[str, typer.Option("--app", help="Only deliveries of this app.")] = "",
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show the newest N.")] = 20,
    output: OutputOption = Output.TEXT,
) -> None:
    """List deliveries, newest first: commit, branch, environment, state, start, duration."""
    now = datetime.now(UTC)
    runs = prefect_io.flow_runs(DELIVERY_FLOW, limit=max(limit, SCANNED) if app_name else limit)
    rows = [row(r, now) for r in runs]
    rows = [r for r in rows if not app_name or r["app"] == app_name][:limit]
    emit(output, {"deliveries": rows}, table(rows, COLUMNS, empty="no deliveries"))


def find_delivery(name_or_id: str) -> FlowRun:
    """The delivery run named `name_or_id`, or with that id (exit 3 when there is none)."""
    try:
        run_id: UUID | None = UUID(name_or_id)
    except ValueError:
        run_id = None
    if run_id is not None:
        found = prefect_io.flow_runs(DELIVERY_FLOW, limit=1, run_id=run_id)
    else:
        found = prefect_io.flow_runs(DELIVERY_FLOW, limit=1, name=name_or_id)
    if not found:
        fail(
            f"no delivery run {name_or_id!r}: give a run name or id from kyb delivery ls",
            ExitCode.NOT_FOUND,
        )
    return found[0]


def details(run: FlowRun) -> dict[str, Any]:
    """A delivery: its row, its report, the release results of its environments, subflow runs."""
    now = datetime.now(UTC)
    artifacts = prefect_io.run_artifacts(run.id)  # newest first
    report = next((a for a in artifacts if (a.key or "").startswith(REPORT_PREFIX)), None)
    releases = [
        {"key": a.key, **read_result(str(a.data))}
        for a in reversed(artifacts)
        if (a.key or "").startswith(RESULT_PREFIX) and a.data is not None
    ]
    children = [
        {
            "flow": flow,
            "name": child.name,
            "id": str(child.id),
            "state": child.state_name,
            "duration": human_seconds(duration(child.start_time, child.end_time, now)),
        }
        for flow, child in prefect_io.child_runs(run.id)
    ]
    return {
        **row(run, now),
        "message": run.state.message if run.state else None,
        "report": delivery_report(str(report.data)) if report is not None else None,
        "releases": releases,
        "subflows": children,
    }


def render(shown: dict[str, Any]) -> str:
    """A delivery as a person reads it."""
    lines = [
        f"Name:         {shown['name']} ({shown['id']})",
        f"App:          {shown['app']}",
        f"Commit:       {shown['commit'] or '-'} ({shown['branch'] or '-'})",
        f"Environment:  {shown['environment'] or '(the parameters: every branch environment)'}",
        f"State:        {shown['state']}" + (f": {shown['message']}" if shown["message"] else ""),
        f"Started:      {shown['started'] or '-'} ({shown['duration'] or 'not started'})",
    ]
    report = shown["report"]
    if report:
        lines.append(f"Image:        {report['image'] or '-'}")
        for stage, secs in report["ci_seconds"].items():
            lines.append(f"CI:           {stage} {secs}s")
        for env in report["environments"]:
            lines.append(
                f"Delivered:    {env['environment']}: {env['result']} ({env['strategy']}) "
                f"{env['release']}"
            )
    else:
        lines.append("Report:       none yet (the delivery report is written when it ends)")
    for rel in shown["releases"]:
        lines.append(f"Release:      {rel['outcome']}: {rel['summary']}")
        lines += [
            f"  Analysis:   {v['key']}: {v['outcome']} ({v['reason']})" for v in rel["verdicts"]
        ]
        lines += [
            f"  Decision:   {d['choice']} by {d['decided_by']}: {d['reason']}"
            for d in rel["decisions"]
        ]
    lines += [
        "",
        table(shown["subflows"], ("flow", "name", "state", "duration"), empty="no subflow runs"),
    ]
    return "\n".join(lines)


@app.command("get")
@handled
def get(
    run_name: Annotated[str, typer.Argument(metavar="RUN", help="A delivery run's name or id.")],
    output: OutputOption = Output.TEXT,
) -> None:
    """Show one delivery: commit, state, its report, release results and subflow runs."""
    shown = details(find_delivery(run_name))
    emit(output, shown, render(shown))
