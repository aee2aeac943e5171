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


def saved_block(block_type: type[Any], name: str, what: str) -> dict[str, Any]:
    """The reference a run parameter takes for the saved block `name` (exit 3 if none)."""
    if not prefect_io.block_exists(block_type.get_block_type_slug(), name):
        fail(
            f"no {what} block named {name!r}: save one first (prefect block ls)", ExitCode.NOT_FOUND
        )
    return block_ref(block_type, name)


def launch(
    deployment: str, parameters: dict[str, Any], wait: bool, timeout: float, out: Output
) -> None:
    """Create a run of `deployment`; with `wait`, follow it and exit 1 unless it completed."""
    if not prefect_io.deployment_exists(deployment):
        fail(
            f"no deployment {deployment!r} on the Prefect server: create prefect.yaml's "
            "deployments (prefect deploy --all; make demo does)",
            ExitCode.NOT_FOUND,
        )
    run: FlowRun = run_deployment(deployment, parameters=parameters, timeout=0)
    if out is Output.TEXT:
        typer.echo(f"started {run.name} ({run.id}) of {deployment}")
    if wait:

        def said(now: FlowRun) -> None:
            if out is Output.TEXT:
                hint = (
                    "  (waiting for a person: kyb release promote|abort)"
                    if now.state and (now.state.is_paused())
                    else ""
                )
                typer.echo(f"{run.name}: {now.state_name}{hint}")

        run = prefect_io.follow(run.id, timeout, said)
    state = run.state
    data = {"run": {"id": str(run.id), "name": run.name, "state": run.state_name}}
    if out is Output.JSON:
        emit(out, {**data, "deployment": deployment}, "")
    if wait and not (state and state.is_completed()):
        ended = state is not None and state.is_final()
        why = (
            f"ended {run.state_name}: {state.message}"
            if ended and state
            else (f"still {run.state_name} after {timeout:g}s")
        )
        fail(f"run {run.name} ({run.id}) {why}")
