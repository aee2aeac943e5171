"""`kyb release`: look at an app's release, decide a paused one, start a release or an undo."""

from __future__ import annotations

import getpass
import json
import os
import signal
import sys
import threading
from typing import Annotated, Any
from uuid import UUID

import typer
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import resume_flow_run

from cli import cluster_io, prefect_io
from cli.matching import read_result
from cli.output import ExitCode, Output, OutputOption, emit, fail, handled
from cli.release_view import build, render
from core.release.decisions import Choice

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # what ends a --watch, exit 0

app = typer.Typer(
    help="Releases of an app: look, promote, abort, start, undo.", no_args_is_help=True
)

App = Annotated[
    str, typer.Argument(metavar="APP", help="The app (its Deployment's name), e.g. kyb-platform.")
]
Namespace = Annotated[str, typer.Option("--namespace", "-n", help="The app's namespace.")]
Cluster = Annotated[
    str, typer.Option("--cluster", help="The saved KYB Kubernetes Cluster block to read.")
]
By = Annotated[str, typer.Option("--by", help="Who decides (default: $USER).")]
Reason = Annotated[str, typer.Option("--reason", help="Why, as the release result records it.")]
WATCHED_RUNS = 20  # release runs a watch reads every 2 s while the app has none yet


def run_info(app_name: str, namespace: str) -> dict[str, Any] | None:
    """The latest release run of the app: state, progress and what its result artifact says."""
    runs = prefect_io.releases_of(app_name, namespace)
    if not runs:
        return None
    run = runs[0]
    artifacts = prefect_io.run_artifacts(run.id)
    result = next((a for a in artifacts if a.key == f"release-result-{app_name}"), None)
    progress = next((a for a in artifacts if a.type == "progress"), None)
    return {
        "id": str(run.id),
        "name": run.name,
        "state": run.state_name,
        "paused": bool(run.state and run.state.is_paused()),
        "started": run.start_time.isoformat() if run.start_time else None,
        "progress": f"{progress.data}% {progress.description or ''}".strip() if progress else None,
        "result": read_result(str(result.data)) if result is not None else None,
    }


def view(app_name: str, namespace: str, cluster_name: str) -> dict[str, Any]:
    """All `release get` shows (exit 3 when neither the cluster nor Prefect knows the app)."""
    cluster = cluster_io.load_cluster(cluster_name)
    snap = cluster_io.snapshot(cluster, namespace, app_name)
    run = run_info(app_name, namespace)
    if snap is None and run is None:
        fail(
            f"no app {app_name!r} in namespace {namespace!r} on cluster {cluster_name!r}: no "
            "Deployment and no release run; check the name, -n and --cluster",
            ExitCode.NOT_FOUND,
        )
    return build(app_name, namespace, cluster_name, snap, run)


def _show(output: Output, shown: dict[str, Any]) -> None:
    """One rendering; in json, one compact document per line (so a watch is JSON lines)."""
    if output is Output.JSON:
        sys.stdout.write(json.dumps(shown, sort_keys=True, default=str) + "\n")
        sys.stdout.flush()
    else:
        emit(output, shown, render(shown))


@app.command("get")
@handled
def get(
    app_name: App,
    namespace: Namespace,
    cluster: Cluster = "local",
    watch: Annotated[
        bool,
        typer.Option("--watch", "-w", help="Show it again at each change of its pods or run."),
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Stop watching after this many seconds.")
    ] = 600.0,
    output: OutputOption = Output.TEXT,
) -> None:
    """Show an app's workloads, images, replicas, canary weight, step, pods and latest run.

    Reads the cluster and Prefect. With --watch it renders again whenever the app's pods change
    (the Kubernetes watch API) or its latest release run changes state (Prefect, read every 2 s)
    until Ctrl-C or --timeout; json then prints one line per change.
    """
    shown = view(app_name, namespace, cluster)
    _show(output, shown)
    if watch:
        _watch(app_name, namespace, cluster, output, shown, timeout)


def run_state(shown: dict[str, Any]) -> tuple[str | None, str | None]:
    """(run id, Prefect state) of the release run a view shows, read again (cheaply)."""
    run = shown.get("run")
    if not run:
        found = prefect_io.releases_of(shown["app"], shown["namespace"], limit=WATCHED_RUNS)
        return (str(found[0].id), found[0].state_name) if found else (None, None)
    now = prefect_io.read_run(UUID(run["id"]))
    return run["id"], now.state_name if now else None


def _watch(
    app_name: str, namespace: str, cluster_name: str, output: Output, shown: dict, timeout: float
) -> None:
    """Render again at each pod event, and when the latest run's state changes (read every 2 s)."""
    last = [shown]

    def woke(pods_changed: bool) -> None:
        seen = last[0]["run"] or {}
        if not pods_changed and run_state(last[0]) == (seen.get("id"), seen.get("state")):
            return
        now = view(app_name, namespace, cluster_name)
        if now != last[0]:
            if output is Output.TEXT:
                sys.stdout.write("\n")
            _show(output, now)
            last[0] = now

    # Ctrl-C (or a TERM) stops the watch at its next wake, within 2 s, wherever it lands: an
    # interrupt raised inside a Prefect or Kubernetes client call could be swallowed there
    stop = threading.Event()
    handlers = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in STOP_SIGNALS}
    try:
        cluster = cluster_io.load_cluster(cluster_name)
        cluster_io.watch_pods(cluster, namespace, woke, timeout, stopped=stop.is_set)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def paused_run(app_name: str, namespace: str) -> FlowRun:
    """The newest Paused release run of the app (exit 4 when none is paused)."""
    paused = prefect_io.releases_of(app_name, namespace, [StateType.PAUSED])
    if not paused:
        fail(
            f"no paused release of {app_name!r} in namespace {namespace!r}: nothing to decide "
            f"(kyb release get {app_name} -n {namespace} shows where it is)",
            ExitCode.NOTHING_TO_DO,
        )
    return paused[0]


def decide(
    app_name: str, namespace: str, choice: Choice, by: str, reason: str, output: Output
) -> None:
    """Resume the paused release with the same typed answer the Prefect UI form sends."""
    run = paused_run(app_name, namespace)
    answer = {"choice": choice.value, "decided_by": by or _user(), "reason": reason}
    try:
        resume_flow_run(run.id, run_input=answer)
    except FlowPauseTimeout:
        fail(f"run {run.name} ({run.id}) can no longer be resumed: its pause timed out")
    except RuntimeError as exc:  # NotPausedError or a refused resume: someone was quicker
        fail(f"run {run.name} ({run.id}) was not resumed: {exc}", ExitCode.NOTHING_TO_DO)
    data = {"run": {"id": str(run.id), "name": run.name}, **answer}
    emit(output, data, f"{choice.value} sent to {run.name} ({run.id}) as {answer['decided_by']}")


def _user() -> str:
    """Who runs the command: $USER, else the login name."""
    try:
        return os.environ.get("USER") or getpass.getuser()
    except OSError:
        return "unknown"


@app.command("promote")
@handled
def promote(
    app_name: App,
    namespace: Namespace,
    by: By = "",
    reason: Reason = "",
    full: Annotated[
        bool, typer.Option("--full", help="Canary: skip the remaining steps, promote now.")
    ] = False,
    output: OutputOption = Output.TEXT,
) -> None:
    """Promote the app's paused release (exit 4 when none is paused)."""
    choice = Choice.PROMOTE_FULL if full else Choice.PROMOTE
    decide(app_name, namespace, choice, by, reason, output)


@app.command("abort")
@handled
def abort(
    app_name: App,
    namespace: Namespace,
    by: By = "",
    reason: Reason = "",
    output: OutputOption = Output.TEXT,
) -> None:
    """Abort the app's paused release: it rolls back (exit 4 when none is paused)."""
    decide(app_name, namespace, Choice.ABORT, by, reason, output)
