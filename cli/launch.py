"""Runs of deployments for `kyb`: saved blocks by reference, a new run, following it to its end."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment

from blocks.refs import block_ref
from cli import prefect_io
from cli.output import ExitCode, Output, emit, fail

Deployment = Annotated[str, typer.Option("--deployment", help="The deployment to run.")]
Wait = Annotated[bool, typer.Option("--wait", help="Follow the run to its end (exit 1: failed).")]
Timeout = Annotated[float, typer.Option("--timeout", help="Seconds --wait follows the run.")]
RELEASE_HINT = "kyb release promote|abort"


def saved_block(block_type: type[Any], name: str, what: str) -> dict[str, Any]:
    """The reference a run parameter takes for the saved block `name` (exit 3 if none)."""
    if not prefect_io.block_exists(block_type.get_block_type_slug(), name):
        fail(
            f"no {what} block named {name!r}: save one first (prefect block ls)", ExitCode.NOT_FOUND
        )
    return block_ref(block_type, name)


def start_run(deployment: str, parameters: dict[str, Any], out: Output) -> FlowRun:
    """Create a run of `deployment` (exit 3 when the server has no such deployment)."""
    if not prefect_io.deployment_exists(deployment):
        fail(
            f"no deployment {deployment!r} on the Prefect server: create prefect.yaml's "
            "deployments (prefect deploy --all; make demo does)",
            ExitCode.NOT_FOUND,
        )
    run: FlowRun = run_deployment(deployment, parameters=parameters, timeout=0)
    if out is Output.TEXT:
        typer.echo(f"started {run.name} ({run.id}) of {deployment}")
    return run


def follow_run(run: FlowRun, timeout: float, out: Output, hint: str = RELEASE_HINT) -> FlowRun:
    """Follow `run` until it ends or `timeout` passes; text output names each new state."""

    def said(now: FlowRun) -> None:
        if out is Output.TEXT:
            paused = now.state is not None and now.state.is_paused()
            typer.echo(
                f"{run.name}: {now.state_name}"
                + (f"  (waiting for a person: {hint})" if paused else "")
            )

    return prefect_io.follow(run.id, timeout, said)


def run_data(run: FlowRun, deployment: str) -> dict[str, Any]:
    """What the JSON output says about a run."""
    return {
        "run": {"id": str(run.id), "name": run.name, "state": run.state_name},
        "deployment": deployment,
    }


def check_ended(run: FlowRun, timeout: float) -> None:
    """Exit 1 unless the followed run completed, saying how it ended or that it still runs."""
    state = run.state
    if state is not None and state.is_completed():
        return
    if state is not None and state.is_final():
        fail(f"run {run.name} ({run.id}) ended {run.state_name}: {state.message}")
    fail(f"run {run.name} ({run.id}) still {run.state_name} after {timeout:g}s")


def launch(
    deployment: str,
    parameters: dict[str, Any],
    wait: bool,
    timeout: float,
    out: Output,
    hint: str = RELEASE_HINT,
) -> FlowRun:
    """Create a run of `deployment`; with `wait`, follow it and exit 1 unless it completed."""
    run = start_run(deployment, parameters, out)
    if wait:
        run = follow_run(run, timeout, out, hint)
    if out is Output.JSON:
        emit(out, run_data(run, deployment), "")
    if wait:
        check_ended(run, timeout)
    return run
