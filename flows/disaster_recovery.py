"""The `disaster-recovery` flow: bring the backed-up namespaces up in the DR cluster."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from prefect import flow, get_run_logger, pause_flow_run, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.input import RunInput
from prefect.runtime import flow_run
from prefect.transactions import Transaction, get_transaction, transaction
from pydantic import Field

from blocks import VeleroInstall
from core.errors import ConfigError
from core.recovery.drill import check_restore
from core.recovery.errors import RestoreFailed
from core.recovery.progress import DISASTER_RECOVERY, RESTORED
from core.recovery.restore_plan import plan_restore
from core.recovery.selection import recovery_times
from flows.form import titled
from flows.progress import FAILED, Progress
from tasks import restore, velero
from tasks.health import check_health
from tasks.kube import api_for

PLAN_ARTIFACT = "dr-restore-plan"
DNS_PAUSE_KEY = "dns-switch"  # the pause of the manual DNS step (`kyb backup confirm-dns`)
REPORT_ARTIFACT = "dr-report"


class DnsSwitch(RunInput):
    """The form the paused recovery shows: the DNS step is done by a person."""

    dns_updated: bool = False
    confirmed_by: str = Field(min_length=1)
    note: str = ""


@task(name="velero-start-restore", cache_policy=NO_CACHE)
def start_restore(install: VeleroInstall, manifest: dict[str, Any], new: list[str]) -> str:
    """Create the Restore; remember which namespaces it creates, for the rollback hook."""
    txn = get_transaction()
    if txn is not None:
        txn.set("new_namespaces", new)
        txn.set("install", install)
    restore.create_restore.fn(install, manifest)
    return manifest["metadata"]["name"]


@start_restore.on_rollback
def _undo_restore(txn: Transaction) -> None:
    install, new = txn.get("install"), txn.get("new_namespaces", [])
    if install is not None and new:
        restore.delete_namespaces.fn(install.cluster, new)


def _address(install: VeleroInstall, service: str) -> str:
    """What DNS should point at: the Service's load-balancer address, else say there is none."""
    from kubernetes import client

    ns, _, name = service.partition("/")
    svc = client.CoreV1Api(api_for(install.cluster)).read_namespaced_service(name, ns)
    ingress = (svc.status.load_balancer.ingress if svc.status.load_balancer else None) or []
    found = [i.ip or i.hostname for i in ingress if i.ip or i.hostname]
    if found:
        return ", ".join(found)
    return (
        f"no load-balancer address yet on Service {service} (type {svc.spec.type}, "
        f"cluster IP {svc.spec.cluster_ip}); point DNS at the DR cluster's ingress"
    )


def _ask_dns(address: str, dns_name: str, timeout: int) -> DnsSwitch:
    text = (
        f"The DR cluster serves the restored application. Point **{dns_name}** at "
        f"**{address}**, then confirm here with your name."
    )
    return pause_flow_run(
        wait_for_input=DnsSwitch.with_initial_data(description=text),
        timeout=timeout,
        poll_interval=2,
        key=DNS_PAUSE_KEY,
    )


def _report(
    backup: str,
    plan_summary: str,
    times: dict[str, float],
    dns: DnsSwitch,
    address: str,
    dns_name: str,
    checked: str,
) -> str:
    done = "switched" if dns.dns_updated else "NOT switched"
    return "\n".join(
        [
            f"## Disaster recovery from `{backup}`",
            "",
            f"- RTO (start to healthy): **{times['rto_seconds']:.1f} s**",
            f"- RPO (backup age at start): **{times['rpo_seconds']:.0f} s**",
            f"- restore plan: {plan_summary}",
            f"- verification: {checked}",
            f"- DNS `{dns_name}` → {address}: {done}, confirmed by **{dns.confirmed_by}**"
            + (f" ({dns.note})" if dns.note else ""),
        ]
    )


@flow(name="disaster-recovery")
def disaster_recovery(
    backup: Annotated[str, titled("Backup")] = "latest",
    namespaces: Annotated[list[str] | None, titled("Namespaces")] = None,
    velero_install: Annotated[VeleroInstall | None, titled("Velero of the DR cluster")] = None,
    existing_policy: Annotated[Literal["none", "update"], titled("Existing objects")] = "none",
    dns_service: Annotated[str, titled("Service DNS points at")] = "kyb-production/kyb-platform",
    dns_name: Annotated[str, titled("DNS name")] = "kyb.example.com",
    health_url: Annotated[str, titled("Health URL")] = "",
    confirm_dns_as: Annotated[str, titled("Confirm DNS as (demo)")] = "",
    dns_timeout_seconds: Annotated[int, titled("DNS step timeout (seconds)")] = 3600,
    timeout_seconds: Annotated[float, titled("Timeout (seconds)")] = 900,
) -> dict[str, Any]:
    """Restore a backup into the DR cluster and hand over to a person for DNS.

    The `disaster-recovery` flow: bring the backed-up namespaces up in the DR cluster (the seed's
    disaster-recovery.sh, as one observable run started by hand from the Prefect UI).

    Order: pick the backup (latest, a day, or a name) -> check the storage location and inputs ->
    publish the restore plan (create / skip / differs per object) -> storage location ReadOnly (so
    nothing in the DR cluster can write to or prune the backups while restoring) -> restore ->
    Deployments available, Services and objects as backed up, optional health check -> storage
    location back to its mode -> pause for the manual DNS step (typed input: who switched it) ->
    report with RTO (start to healthy) and RPO (backup age at start).

    Bad input fails before anything is restored. A restore that fails or does not become healthy is
    rolled back in a Prefect transaction: namespaces the restore created are deleted again, so the
    DR cluster is never left half restored.

    Args:
        backup: "latest", a day (YYYY-MM-DD or YYYYMMDD: that day's newest) or a backup name.
        namespaces: which of the backup's namespaces to restore (default: all of them).
        velero_install: the KYB Velero install of the DR cluster (unset: the block named "dr").
        existing_policy: Velero's existingResourcePolicy for objects already there: "none"
            (keep them) or "update".
        dns_service: "namespace/name" of the Service whose address DNS must point at.
        dns_name: the record to switch, shown in the pause form.
        health_url: a base URL whose /health must be healthy (empty: not checked).
        confirm_dns_as: skip the pause and record this name (demo and tests only).
        dns_timeout_seconds: how long the pause waits for the DNS confirmation.
        timeout_seconds: for the restore, and again for the Deployments to become available.

    Raises:
        ConfigError: unknown backup or namespace, bad policy: nothing is restored.
        TransientError: the storage location is unavailable: nothing is restored.
        RestoreFailed: Velero or the restored application failed; the restore is rolled back.
    """
    log = get_run_logger()
    started = datetime.now(UTC)
    install = velero_install or VeleroInstall.load("dr")
    if existing_policy not in ("none", "update"):
        raise ConfigError(f"existing_policy {existing_policy!r}: use none or update")
    if dns_service.count("/") != 1:
        raise ConfigError(f"dns_service {dns_service!r}: write it as namespace/name")
    progress = Progress("dr", title="disaster recovery", stages=DISASTER_RECOVERY)
    with progress.stage("choose backup", backup) as row:
        chosen, wanted, objects = restore.choose(install, backup, namespaces)
        progress.note(row, f"{chosen.name}: {len(objects)} objects of {', '.join(wanted)}")
    with progress.stage("restore plan") as row:
        plan = plan_restore(
            objects,
            restore.existing(install.cluster, objects, {}),
            {},
            existing_policy=existing_policy,
        )
        create_markdown_artifact(
            "\n".join(
                [f"## Restore plan for `{chosen.name}`", "", plan.summary(), "", *plan.rows()]
            ),
            key=PLAN_ARTIFACT,
            description=plan.summary(),
        )
        progress.note(row, plan.summary())
    new = sorted(set(wanted) - restore.namespaces(install.cluster))
    suffix = (flow_run.get_id() or started.strftime("%H%M%S"))[:8]
    name = f"dr-{suffix}-{chosen.name}"[:63].rstrip("-")
    with progress.stage("storage location read-only", install.storage_location):
        previous = velero.set_access_mode(install, "ReadOnly")
    try:
        with transaction():
            start_restore(
                install,
                restore.restore_manifest(name, chosen.name, wanted, {}, existing_policy),
                new,
            )
            with progress.stage("restore items", name, counted=True) as row:
                seen = progress.items(row, RESTORED, "restored")
                restore.wait_restore(install, name, timeout_seconds, seen)
            with progress.stage("deployments available", ", ".join(wanted), counted=True) as row:
                seen = progress.counter(row, "Deployments available")
                restore.wait_available(install.cluster, wanted, timeout_seconds, seen)
            with progress.stage("check objects") as row:
                result = check_restore(objects, restore.existing(install.cluster, objects, {}), {})
                ok = result.total - result.failed
                progress.note(row, f"{ok} of {result.total} objects as backed up")
                if not result.passed:
                    raise RestoreFailed(f"restored objects differ: {result.summary()}")
            if health_url:
                with progress.stage("health check", health_url):
                    health = check_health(health_url)
                    if not health.ok:
                        raise RestoreFailed(f"restored application unhealthy: {health.reason}")
    finally:
        with progress.stage("storage location mode back", previous):
            velero.set_access_mode(install, previous)
    healthy = datetime.now(UTC)
    times = recovery_times(started, healthy, chosen.completed or started)
    log.info(
        "restored %s into the DR cluster: healthy after %.1fs", chosen.name, times["rto_seconds"]
    )
    with progress.stage("DNS switch", f"waiting for a person to switch {dns_name}") as row:
        address = _address(install, dns_service)
        progress.note(row, f"waiting for a person to point {dns_name} at {address}")
        dns = (
            DnsSwitch(dns_updated=True, confirmed_by=confirm_dns_as, note="automatic")
            if confirm_dns_as
            else _ask_dns(address, dns_name, dns_timeout_seconds)
        )
        done = "switched" if dns.dns_updated else "NOT switched"
        progress.note(row, f"{dns_name} {done}, confirmed by {dns.confirmed_by}")
    with progress.stage("report", REPORT_ARTIFACT):
        report = _report(
            chosen.name, plan.summary(), times, dns, address, dns_name, result.summary()
        )
        create_markdown_artifact(
            report,
            key=REPORT_ARTIFACT,
            description=f"DR from {chosen.name}: RTO {times['rto_seconds']:.0f}s",
        )
    if not dns.dns_updated:
        progress.next("DNS not switched", dns.note or "no reason given", state=FAILED)
        raise ConfigError(
            f"DNS for {dns_name} was not switched ({dns.confirmed_by}: "
            f"{dns.note or 'no reason given'}): traffic still goes to the old site"
        )
    progress.finish(f"{chosen.name} restored, healthy after {times['rto_seconds']:.1f}s")
    return {
        "backup": chosen.name,
        "namespaces": wanted,
        "plan": plan.summary(),
        **times,
        "dns_address": address,
        "dns_confirmed_by": dns.confirmed_by,
        "restore": name,
    }
