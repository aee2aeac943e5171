"""The `dr-drill` flow: prove the latest backup restores. Weekly in prefect.yaml."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from blocks import VeleroInstall
from core.errors import ConfigError
from core.recovery.drill import DrillResult, check_restore, scratch_mapping
from core.recovery.errors import DrillFailed, RestoreFailed
from core.recovery.progress import DRILL, RESTORED
from core.recovery.resource_list import missing_from, parse_resource_list
from core.recovery.selection import recovery_times
from core.recovery.stored import gunzip_json
from flows.form import titled
from flows.progress import FAILED, Progress
from tasks import RETRIES, restore, velero

ARTIFACT = "dr-drill-report"


@task(name="velero-resource-list", cache_policy=NO_CACHE, **RETRIES)
def resource_list(install: VeleroInstall, backup: str) -> list:
    """What Velero recorded as backed up (its resource list), parsed."""
    data = velero.download(install, "BackupResourceList", backup)
    what = f"BackupResourceList of {backup}"
    return parse_resource_list(gunzip_json(data, install.max_download_bytes, what))


def _report(
    backup: str,
    result: DrillResult | None,
    extra: list[str],
    times: dict[str, float],
    mapping: dict[str, str],
    error: str = "",
) -> str:
    passed = result is not None and result.passed and not extra and not error
    lines = [f"## DR drill of `{backup}`: {'PASSED' if passed else 'FAILED'}", ""]
    if times:
        lines.append(
            f"RTO (restore start to available): **{times['rto_seconds']:.1f} s**; "
            f"RPO (backup age at start): **{times['rpo_seconds']:.0f} s**"
        )
    lines += ["", "Scratch namespaces: " + ", ".join(f"`{a}` → `{b}`" for a, b in mapping.items())]
    if error:
        lines += ["", f"**Restore failed:** {error}"]
    if extra:
        lines += ["", "Listed in the backup but not restored:", *(f"- {m}" for m in extra)]
    if result is not None:
        lines += ["", result.summary(), "", *result.rows()]
    return "\n".join(lines)


@flow(name="dr-drill")
def dr_drill(
    backup: Annotated[str, titled("Backup")] = "latest",
    namespaces: Annotated[list[str] | None, titled("Namespaces")] = None,
    velero_install: Annotated[VeleroInstall | None, titled("Velero of the DR cluster")] = None,
    timeout_seconds: Annotated[float, titled("Timeout (seconds)")] = 600,
    keep_namespaces: Annotated[bool, titled("Keep the scratch namespaces")] = False,
) -> dict[str, Any]:
    """Restore a backup into scratch namespaces of the DR cluster and check what came back.

    Restores the backup into scratch namespaces (Velero's namespaceMapping) on the disaster-recovery
    cluster, checks that every backed-up Deployment, Service, ConfigMap and Secret is there, equal
    to what was backed up, and that the Deployments become available; measures RTO and RPO,
    publishes the `dr-drill-report` artifact and deletes the scratch namespaces. A backup that does
    not restore fails the drill (and the run), including one whose stored tarball lost an object
    Velero listed.

    Args:
        backup: "latest", a day (YYYY-MM-DD) or a backup name.
        namespaces: which of the backup's namespaces to drill (default: all of them).
        velero_install: the KYB Velero install of the cluster to restore into (unset: the
            block named "dr").
        timeout_seconds: for the restore, and again for the Deployments to become available.
        keep_namespaces: leave the scratch namespaces for inspection (default: deleted).

    Raises:
        ConfigError: unknown backup, or a namespace the backup does not hold (nothing restored).
        DrillFailed: the backup did not restore completely (the report says what is wrong).
    """
    log = get_run_logger()
    install = velero_install or VeleroInstall.load("dr")
    progress = Progress("dr-drill", title="DR drill", stages=DRILL)
    with progress.stage("choose backup", backup) as row:
        chosen, wanted, objects = restore.choose(install, backup, namespaces)
        progress.note(row, f"{chosen.name}: {len(objects)} objects of {', '.join(wanted)}")
    with progress.stage("resource list", chosen.name) as row:
        listed = [i for i in resource_list(install, chosen.name) if i.namespace in wanted]
        progress.note(row, f"{len(listed)} items listed by Velero")
    suffix = (flow_run.get_id() or datetime.now(UTC).strftime("%H%M%S"))[:8]
    mapping = scratch_mapping(wanted, suffix)
    clash = sorted(set(mapping.values()) & restore.namespaces(install.cluster))
    if clash:
        raise ConfigError(f"scratch namespace(s) {clash} already exist: delete them first")
    started = datetime.now(UTC)
    name = f"drill-{suffix}-{chosen.name}"[:63].rstrip("-")
    result, extra, times, error = None, [], {}, ""
    try:
        manifest = restore.restore_manifest(name, chosen.name, wanted, mapping)
        with progress.stage("restore items", name, counted=True) as row:
            restore.create_restore(install, manifest)
            restore.wait_restore(
                install, name, timeout_seconds, progress.items(row, RESTORED, "restored")
            )
        scratch = list(mapping.values())
        with progress.stage("deployments available", ", ".join(scratch), counted=True) as row:
            seen = progress.counter(row, "Deployments available")
            restore.wait_available(install.cluster, scratch, timeout_seconds, seen)
        with progress.stage("check objects") as row:
            live = restore.existing(install.cluster, objects, mapping)
            result = check_restore(objects, live, mapping)
            extra = missing_from(listed, set(live), mapping)
            good = result.total - result.failed
            bad = not result.passed or bool(extra)
            detail = f"{good} of {result.total} objects as backed up" + (
                f", {len(extra)} listed but not restored" if extra else ""
            )
            progress.note(row, detail, state=FAILED if bad else None)
        times = recovery_times(started, datetime.now(UTC), chosen.completed or started)
    except RestoreFailed as exc:
        error = str(exc)
    finally:
        what = "kept for inspection" if keep_namespaces else "deleted"
        with progress.stage("cleanup", f"scratch namespaces {what}"):
            if not keep_namespaces:
                restore.delete_namespaces(install.cluster, list(mapping.values()))
    passed = result is not None and result.passed and not extra and not error
    with progress.stage("report", ARTIFACT):
        report = _report(chosen.name, result, extra, times, mapping, error)
        create_markdown_artifact(
            report,
            key=ARTIFACT,
            description=f"DR drill of {chosen.name}: {'passed' if passed else 'FAILED'}",
        )
    if not passed:
        problems = ([error] if error else []) + extra + (result.failures if result else [])
        progress.next("drill failed", "; ".join(problems[:3]), state=FAILED)
        raise DrillFailed(f"backup {chosen.name} does not restore: " + "; ".join(problems[:5]))
    progress.finish(f"{chosen.name} restores: RTO {times['rto_seconds']:.1f}s")
    log.info(
        "drill of %s passed: RTO %.1fs, RPO %.0fs",
        chosen.name,
        times["rto_seconds"],
        times["rpo_seconds"],
    )
    return {
        "backup": chosen.name,
        "passed": True,
        "namespaces": wanted,
        "mapping": mapping,
        "objects": len(objects),
        **times,
    }
