"""`kyb backup restore`, `kyb backup confirm-dns` and `kyb drill`: the DR and drill flows."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any

import typer
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import resume_flow_run

from blocks import VeleroInstall
from blocks.refs import block_ref
from cli import prefect_io
from cli.backup import app, load_install
from cli.launch import Deployment, Timeout, Wait, check_ended, follow_run, run_data, start_run
from cli.output import ExitCode, Output, OutputOption, emit, fail, handled
from cli.reports import dr_summary, drill_verdict, render_dr, render_drill
from core.errors import ConfigError
from core.recovery.backups import BackupInfo
from core.recovery.selection import select_backup
from flows.disaster_recovery import DNS_PAUSE_KEY, REPORT_ARTIFACT, DnsSwitch
from flows.dr_drill import ARTIFACT as DRILL_ARTIFACT
from tasks import velero

DR_FLOW = "disaster-recovery"

Namespaces = Annotated[
    list[str] | None,
    typer.Option(
        "--namespaces",
        "--namespace",
        "-n",
        help="A namespace of the backup to restore (repeat, or a,b; default: all it holds).",
    ),
]
Velero = Annotated[
    str, typer.Option("--velero", help="The saved Velero Install block of the DR cluster.")
]


class Existing(StrEnum):
    """Velero's existingResourcePolicy for objects already in the DR cluster."""

    NONE = "none"
    UPDATE = "update"


def chosen_backup(install_name: str, which: str, namespaces: list[str]) -> str:
    """The backup `which` names in the install's cluster, as the flows choose it (exit 3: none).

    Returns:
        The backup's name, so the run restores what was checked (`latest` resolved now).
    """
    install = load_install(install_name)
    found = [BackupInfo.from_object(o) for o in velero.list_objects(install, "backups")]
    try:
        chosen = select_backup(found, which)
    except ConfigError as exc:
        code = ExitCode.FAILED if any(b.name == which for b in found) else ExitCode.NOT_FOUND
        fail(
            f"{exc} (Velero of {install_name!r}; a backup made in another cluster shows up after "
            f"Velero's backup sync, about a minute: kyb backup ls --velero {install_name})",
            code,
        )
    unknown = sorted(set(namespaces) - set(chosen.included_namespaces))
    if unknown:
        fail(
            f"backup {chosen.name} does not hold namespace(s) {unknown}: choose from "
            f"{list(chosen.included_namespaces)} with --namespaces",
            ExitCode.NOT_FOUND,
        )
    return chosen.name


def _split(values: list[str] | None) -> list[str]:
    """Repeated and comma-separated option values as one list."""
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def report_of(run: FlowRun, key: str) -> str | None:
    """The newest markdown of the run's artifact `key`, or None when the run made none."""
    found = next((a for a in prefect_io.run_artifacts(run.id) if a.key == key), None)
    return str(found.data) if found is not None and found.data is not None else None


def run_with_report(
    deployment: str,
    parameters: dict[str, Any],
    options: tuple[bool, float, Output],
    hint: str,
    report: tuple[str, Callable[[str], dict[str, Any]], Callable[[dict[str, Any]], str]],
    backup: str,
) -> None:
    """Start a run; with --wait follow it, show what its report artifact says, exit 1 unless ok.

    Args:
        deployment: the deployment to run.
        parameters: its parameters.
        options: wait, timeout and output.
        hint: what a person answers a pause with.
        report: the artifact's key, its reader and how its reading is shown as text.
        backup: the backup the run restores (json output names it).
    """
    wait, timeout, out = options
    key, read, render = report
    run = start_run(deployment, parameters, out)
    found = None
    if wait:
        run = follow_run(run, timeout, out, hint)
        markdown = report_of(run, key)
        found = read(markdown) if markdown is not None else None
    if out is Output.JSON:
        emit(out, {**run_data(run, deployment), "backup": backup, "report": found}, "")
    elif found is not None:
        emit(out, found, render(found))
    if wait:
        check_ended(run, timeout)


@app.command("restore")
@handled
def restore(
    backup: Annotated[
        str, typer.Argument(metavar="BACKUP", help="latest, a day (YYYY-MM-DD) or a backup name.")
    ],
    namespaces: Namespaces = None,
    install: Velero = "dr",
    existing: Annotated[
        Existing, typer.Option("--existing", help="Objects already there: keep (none) or update.")
    ] = Existing.NONE,
    confirm_dns_as: Annotated[
        str, typer.Option("--confirm-dns-as", help="Record NAME for the DNS step, no pause (demo).")
    ] = "",
    dns_service: Annotated[
        str, typer.Option("--dns-service", help="namespace/name of the Service DNS points at.")
    ] = "kyb-production/kyb-platform",
    dns_name: Annotated[str, typer.Option("--dns-name", help="The DNS record to switch.")] = (
        "kyb.example.com"
    ),
    health_url: Annotated[
        str, typer.Option("--health-url", help="A base URL whose /health must be healthy.")
    ] = "",
    dns_timeout: Annotated[
        int, typer.Option("--dns-timeout", min=1, help="Seconds the DNS step waits for a person.")
    ] = 3600,
    restore_timeout: Annotated[
        float, typer.Option("--restore-timeout", help="Seconds for the restore, and for health.")
    ] = 900.0,
    deployment: Deployment = "disaster-recovery/disaster-recovery",
    wait: Wait = False,
    timeout: Timeout = 7200.0,
    output: OutputOption = Output.TEXT,
) -> None:
    """Restore a backup into the DR cluster: a run of the disaster-recovery deployment.

    The run pauses at the DNS step until `kyb backup confirm-dns --by NAME` answers it, unless
    --confirm-dns-as is given. The backup is checked first (exit 3 when there is no such one).
    """
    wanted = _split(namespaces)
    name = chosen_backup(install, backup, wanted)
    parameters: dict[str, Any] = {
        "backup": name,
        "namespaces": wanted or None,
        "velero_install": block_ref(VeleroInstall, install),
        "existing_policy": existing.value,
        "dns_service": dns_service,
        "dns_name": dns_name,
        "health_url": health_url,
        "confirm_dns_as": confirm_dns_as,
        "dns_timeout_seconds": dns_timeout,
        "timeout_seconds": restore_timeout,
    }
    if output is Output.TEXT:
        typer.echo(f"restoring {name} with Velero {install!r}")
    hint = "kyb backup confirm-dns --by NAME"
    report = (REPORT_ARTIFACT, dr_summary, render_dr)
    run_with_report(deployment, parameters, (wait, timeout, output), hint, report, name)


def paused_recovery(run_name: str) -> FlowRun:
    """The disaster-recovery run paused at its DNS step (exit 4 when none; 2 when several)."""
    paused = [
        r
        for r in prefect_io.flow_runs(DR_FLOW, [StateType.PAUSED])
        if r.state is not None and r.state.state_details.pause_key == DNS_PAUSE_KEY
    ]
    if run_name:
        paused = [r for r in paused if run_name in (r.name, str(r.id))]
    if not paused:
        which = (
            f"run {run_name!r} is not a disaster recovery" if run_name else "no disaster recovery"
        )
        fail(
            f"{which} paused at its DNS step: nothing to confirm (prefect flow-run ls shows runs)",
            ExitCode.NOTHING_TO_DO,
        )
    if len(paused) > 1:
        names = ", ".join(r.name for r in paused)
        fail(
            f"{len(paused)} recoveries wait for DNS ({names}): pick one with --run", ExitCode.USAGE
        )
    return paused[0]


@app.command("confirm-dns")
@handled
def confirm_dns(
    by: Annotated[str, typer.Option("--by", help="Who switched DNS (recorded in the report).")],
    note: Annotated[str, typer.Option("--note", help="A note for the report.")] = "",
    not_switched: Annotated[
        bool, typer.Option("--not-switched", help="DNS was NOT switched: the recovery fails.")
    ] = False,
    run_name: Annotated[
        str, typer.Option("--run", help="The paused run (name or id) when several wait.")
    ] = "",
    output: OutputOption = Output.TEXT,
) -> None:
    """Answer the disaster recovery paused at its DNS step (exit 4 when none is paused)."""
    if not by.strip():
        raise typer.BadParameter("say who switched DNS", param_hint="--by")
    run = paused_recovery(run_name)
    answer = DnsSwitch(dns_updated=not not_switched, confirmed_by=by.strip(), note=note)
    try:
        resume_flow_run(run.id, run_input=answer.model_dump())
    except FlowPauseTimeout:
        fail(f"run {run.name} ({run.id}) can no longer be resumed: its pause timed out")
    except RuntimeError as exc:  # NotPausedError or a refused resume: someone was quicker
        fail(f"run {run.name} ({run.id}) was not resumed: {exc}", ExitCode.NOTHING_TO_DO)
    done = "switched" if answer.dns_updated else "NOT switched"
    data = {"run": {"id": str(run.id), "name": run.name}, **answer.model_dump()}
    emit(output, data, f"DNS {done} sent to {run.name} ({run.id}) as {answer.confirmed_by}")


@handled
def drill(
    backup: Annotated[
        str, typer.Argument(metavar="BACKUP", help="latest, a day (YYYY-MM-DD) or a name.")
    ] = "latest",
    namespaces: Namespaces = None,
    install: Velero = "dr",
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the scratch namespaces for inspection.")
    ] = False,
    drill_timeout: Annotated[
        float, typer.Option("--restore-timeout", help="Seconds for the restore, and for health.")
    ] = 600.0,
    deployment: Deployment = "dr-drill/dr-drill",
    wait: Wait = False,
    timeout: Timeout = 1800.0,
    output: OutputOption = Output.TEXT,
) -> None:
    """Prove a backup restores: a run of the dr-drill deployment into scratch namespaces.

    With --wait it prints the drill's verdict (RTO, RPO, objects checked) from the run's
    dr-drill-report artifact and exits 1 when the drill failed.
    """
    wanted = _split(namespaces)
    name = chosen_backup(install, backup, wanted)
    parameters: dict[str, Any] = {
        "backup": name,
        "namespaces": wanted or None,
        "velero_install": block_ref(VeleroInstall, install),
        "timeout_seconds": drill_timeout,
        "keep_namespaces": keep,
    }
    if output is Output.TEXT:
        typer.echo(f"drilling {name} with Velero {install!r}")
    report = (DRILL_ARTIFACT, drill_verdict, render_drill)
    run_with_report(deployment, parameters, (wait, timeout, output), "", report, name)
