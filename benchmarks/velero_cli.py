"""The backup and disaster-recovery flows against Velero's own CLI, on the same namespaces.

Run `uv run sandbox up` first. Each round, in alternating order:
  backup   `velero backup create --wait` of kyb-production and kyb-staging (pods and ReplicaSets
           excluded, as the flow does) vs the `backup` flow called in this process
  restore  `velero restore create --from-backup --wait` of that backup into the DR cluster, then
           `kubectl wait --for=condition=Available deployment --all` in each namespace (Velero's
           wait ends when the objects exist; the app serves only when its pods are Ready: the
           kyb-platform pods run for real, with the seed's 10 s readiness delay) vs the
           `disaster-recovery` flow (restore plan, storage location read-only, restore,
           Deployments available, objects checked, DNS step confirmed by the benchmark, report)
The restored namespaces are deleted from the DR cluster before each restore (not timed).

Each round also times an empty flow run (benchmarks/empty_flow.py) the same way: Prefect's own
floor for any flow, which no work inside a flow can go under (the backup flow cannot be faster
than the CLI plus that).

A flow is timed twice: to its run's Completed state on the server (what the UI, `kyb --wait`
and automations see) and to the call's return, which adds Prefect's end-of-run wait for its
heartbeat thread (it sleeps in 1 s steps: prefect/flow_engine.py `_send_heartbeats`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any

from sandbox.components.prefect_server import client_env

os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.update(client_env(os.environ))  # the platform's API and auth (0600 profiles)
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from prefect.client.orchestration import get_client
from prefect.states import State

from benchmarks.empty_flow import empty
from blocks import VeleroInstall
from core.recovery.backups import DEFAULT_EXCLUDED, DEFAULT_NAMESPACES
from flows.backup import backup
from flows.disaster_recovery import disaster_recovery
from sandbox.platform import DR_BLOCK_NAME, Platform
from tasks import restore, velero

# Velero still works on a backup for a moment after it reads Completed; a backup started at once
# after it waits for that (three CLI backups in a row here: 0.64 s, then 1.10 s and 1.13 s)
SETTLE = 3.0
GONE_TIMEOUT = 180  # namespaces the restore made are deleted between rounds within this


def cli(plat: Platform, kubeconfig: str, *args: str) -> float:
    """Seconds one `velero ... --wait` command took (it must succeed)."""
    command = [str(plat.velero.program), "--kubeconfig", kubeconfig, "-n", "velero", *args]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    seconds = time.monotonic() - started
    if done.returncode != 0 or "Completed" not in done.stdout:
        raise SystemExit(f"{' '.join(args[:2])} failed: {done.stdout[-500:]}{done.stderr[-500:]}")
    return seconds


def timed_flow(call: Callable[[], State]) -> tuple[float, float, Any]:
    """(seconds to the run's Completed state on the server, seconds to return, result)."""
    started = time.time()
    state = call()
    returned = time.time() - started
    with get_client(sync_client=True) as api:
        run = api.read_flow_run(state.state_details.flow_run_id)
    if not state.is_completed() or run.end_time is None:
        raise SystemExit(f"the flow run ended {state.name}: {state.message}")
    return run.end_time.timestamp() - started, returned, state.result()


def one_round(plat: Platform, local: VeleroInstall, dr: VeleroInstall, flip: bool) -> dict:
    wanted = list(DEFAULT_NAMESPACES)
    local_kc, dr_kc = str(plat.settings.kubeconfig), str(plat.settings.dr_kubeconfig)
    row: dict[str, float] = {}

    def by_cli() -> None:
        row["backup_cli"] = cli(
            plat,
            local_kc,
            *("backup", "create", f"bench-cli-{uuid.uuid4().hex[:6]}"),
            *("--include-namespaces", ",".join(wanted)),
            *("--exclude-resources", ",".join(DEFAULT_EXCLUDED), "--wait"),
        )

    def by_flow() -> None:
        call = lambda: backup(namespaces=wanted, velero_install=local, return_state=True)  # noqa: E731
        row["backup_flow"], row["backup_flow_return"], done = timed_flow(call)
        row["backup_name"] = done["name"]

    for step in (by_flow, by_cli) if flip else (by_cli, by_flow):
        time.sleep(SETTLE)  # neither pays for the other's after-work (see SETTLE)
        step()
    row["empty_flow"], _, _ = timed_flow(lambda: empty(return_state=True))
    name = row["backup_name"]
    velero.wait_for(dr, "backups", name, velero.phase_in("Completed"), 120, "sync to the DR side")

    def restore_cli() -> None:
        restore.delete_namespaces.fn(dr.cluster, wanted, GONE_TIMEOUT)
        started = time.monotonic()
        row["restore_velero"] = cli(
            plat,
            dr_kc,
            *("restore", "create", f"bench-cli-{uuid.uuid4().hex[:6]}", "--from-backup", name),
            *("--include-namespaces", ",".join(wanted), "--wait"),
        )
        kubectl = [str(plat.settings.k8s_bin / "kubectl"), "--kubeconfig", dr_kc, "wait"]
        for ns in wanted:
            subprocess.run(
                [*kubectl, "--for=condition=Available", "deployment", "--all", "-n", ns],
                check=True,
                capture_output=True,
                timeout=300,
            )
        row["restore_cli"] = time.monotonic() - started

    def restore_flow() -> None:
        restore.delete_namespaces.fn(dr.cluster, wanted, GONE_TIMEOUT)
        call = lambda: disaster_recovery(  # noqa: E731
            backup=name,
            namespaces=wanted,
            velero_install=dr,
            confirm_dns_as="benchmark",
            dns_service=f"{wanted[0]}/kyb-platform",
            timeout_seconds=300,
            return_state=True,
        )
        row["restore_flow"], row["restore_flow_return"], _ = timed_flow(call)

    for step in (restore_flow, restore_cli) if flip else (restore_cli, restore_flow):
        step()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    plat = Platform()
    local, dr = VeleroInstall.load("local"), VeleroInstall.load(DR_BLOCK_NAME)
    one_round(plat, local, dr, False)  # warm-up: imports, clients, block types, first runs
    rows = [one_round(plat, local, dr, r % 2 == 1) for r in range(args.rounds)]
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0] if k != "backup_name"}
    for what, by_hand in (("backup", "velero CLI"), ("restore", "velero CLI + kubectl wait")):
        c, f, back = med[f"{what}_cli"], med[f"{what}_flow"], med[f"{what}_flow_return"]
        print(
            f"{what} (median of {args.rounds}): {by_hand} {c:.2f}s; flow to Completed {f:.2f}s "
            f"({f / c:.2f}x, goal <= 1.2x); flow call returned {back:.2f}s ({back / c:.2f}x)"
        )
    floor, cli_b, flow_b = med["empty_flow"], med["backup_cli"], med["backup_flow"]
    print(
        f"Prefect's floor, an empty flow run to Completed: {floor:.2f}s; the backup flow vs the "
        f"CLI plus that floor: {flow_b / (cli_b + floor):.2f}x; the flow's own time over the "
        f"CLI beyond the floor: {(flow_b - cli_b - floor) * 1000:.0f} ms"
    )
    print(
        f"restore by the velero CLI alone (objects created, app not yet serving): "
        f"{med['restore_velero']:.2f}s"
    )
    for order, rounds in (("CLI first", rows[0::2]), ("flow first", rows[1::2])):
        if rounds:
            b = statistics.median(r["backup_flow"] / r["backup_cli"] for r in rounds)
            print(f"backup flow / CLI when the {order.split()[0]} went first: {b:.2f}x")
    for i, r in enumerate(rows, 1):
        cells = ", ".join(f"{k} {v:.2f}" for k, v in r.items() if k != "backup_name")
        print(f"  round {i}: {cells}")


if __name__ == "__main__":
    main()
