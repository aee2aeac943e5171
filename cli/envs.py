"""`kyb env`: the saved KYB Environment blocks."""

from __future__ import annotations

from typing import Any

import typer

from cli import prefect_io
from cli.matching import ENV_SLUG
from cli.output import Output, OutputOption, emit, handled, table

app = typer.Typer(help="The KYB Environments releases go to.", no_args_is_help=True)
COLUMNS = ("name", "namespace", "cluster", "strategy", "engine", "approval")


def strategy_kind(strategy: dict[str, Any] | None) -> str:
    """The strategy's kind (canary, blueGreen, rolling); rolling when the overlay's is used."""
    if not strategy:
        return "rolling"
    return next(iter(strategy), "rolling")


def environment_row(doc: Any) -> dict[str, Any]:
    """One environment as `kyb env ls` shows it (no credentials: names of blocks only)."""
    data = doc.data or {}
    refs = doc.block_document_references or {}
    cluster = (refs.get("cluster") or {}).get("block_document") or {}
    return {
        "name": doc.name,
        "namespace": data.get("namespace"),
        "cluster": cluster.get("name") or "(inline)",
        "strategy": strategy_kind(data.get("strategy")),
        "engine": data.get("engine", "pipeline"),
        "approval": bool(data.get("approval_required", False)),
    }


@app.command("ls")
@handled
def ls(output: OutputOption = Output.TEXT) -> None:
    """List the saved environments: namespace, cluster block, strategy, engine, approval."""
    rows = [environment_row(d) for d in prefect_io.block_documents(ENV_SLUG)]
    emit(output, {"environments": rows}, table(rows, COLUMNS, empty="no environments saved"))
