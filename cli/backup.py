"""`kyb backup`: the Velero backups of the platform."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import typer

from blocks import VeleroInstall
from cli.launch import Deployment, Timeout, Wait, launch, saved_block
from cli.output import Output, OutputOption, emit, handled, load_saved, table
from tasks import velero

app = typer.Typer(help="Velero backups.", no_args_is_help=True)
COLUMNS = ("name", "phase", "items", "namespaces", "started", "expires", "errors", "warnings")


def backup_row(backup: Mapping[str, Any]) -> dict[str, Any]:
    """One Velero Backup as `kyb backup ls` shows it."""
    meta, spec = backup.get("metadata") or {}, backup.get("spec") or {}
    status = backup.get("status") or {}
    progress = status.get("progress") or {}
    done, total = progress.get("itemsBackedUp"), progress.get("totalItems")
    return {
        "name": meta.get("name"),
        "phase": status.get("phase") or "New",
        "items": f"{done or 0}/{total}" if total is not None else None,
        "namespaces": ",".join(spec.get("includedNamespaces") or ["*"]),
        "started": status.get("startTimestamp"),
        "expires": status.get("expiration"),
        "errors": status.get("errors", 0),
        "warnings": status.get("warnings", 0),
    }


def load_install(name: str) -> VeleroInstall:
    """The saved VeleroInstall block `name` (exit 3 naming it when there is none)."""
    return load_saved(VeleroInstall, name, "--velero")


@app.command("ls")
@handled
def ls(
    install: Annotated[
        str, typer.Option("--velero", help="The saved Velero Install block to read.")
    ] = "local",
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show the newest N.")] = 50,
    output: OutputOption = Output.TEXT,
) -> None:
    """List the Velero Backups in the install's cluster, newest first."""
    found = velero.list_objects(load_install(install), "backups")
    rows = sorted((backup_row(b) for b in found), key=lambda r: r["started"] or "", reverse=True)
    rows = rows[:limit]
    emit(output, {"backups": rows}, table(rows, COLUMNS, empty="no backups"))


@app.command("create")
@handled
def create(
    namespace: Annotated[
        list[str] | None,
        typer.Option(
            "--namespace", "-n", help="A namespace to back up (repeat; default: the flow's)."
        ),
    ] = None,
    ttl: Annotated[str, typer.Option("--ttl", help="How long Velero keeps it, e.g. 720h.")] = "",
    install: Annotated[
        str, typer.Option("--velero", help="The saved Velero Install block of the cluster.")
    ] = "local",
    deployment: Deployment = "backup/backup",
    wait: Wait = False,
    timeout: Timeout = 1800.0,
    output: OutputOption = Output.TEXT,
) -> None:
    """Back up namespaces with Velero: a run of the backup deployment."""
    parameters: dict[str, Any] = {
        "velero_install": saved_block(VeleroInstall, install, "KYB Velero")
    }
    if namespace:
        parameters["namespaces"] = list(namespace)
    if ttl:
        parameters["ttl"] = ttl
    launch(deployment, parameters, wait, timeout, output)
