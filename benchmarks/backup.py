"""Backup and restore benchmarks on the local platform (run `uv run sandbox up` first)."""

from __future__ import annotations

import argparse
import os
import time
import uuid

from sandbox.components.prefect_server import client_env

os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.update(client_env(os.environ))  # the platform's API and auth (0600 profiles)
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from kubernetes import client

from blocks import VeleroInstall
from flows.backup import backup
from flows.dr_drill import dr_drill
from tasks import velero
from tasks.kube import api_for

IMAGE = "127.0.0.1:5001/kyb-platform@sha256:" + "5" * 64


def fill(install: VeleroInstall, ns: str, configmaps: int) -> int:
    """A namespace with `configmaps` ConfigMaps, a Deployment and a Service; return the count."""
    api = api_for(install.cluster)
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    core.create_namespace({"metadata": {"name": ns}})
    for i in range(configmaps):
        core.create_namespaced_config_map(
            ns, {"metadata": {"name": f"cm-{i:04d}"}, "data": {"KEY": f"value {i}" * 8}}
        )
    labels = {"app": "web"}
    apps.create_namespaced_deployment(
        ns,
        {
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "web", "image": IMAGE}]},
                },
            },
        },
    )
    core.create_namespaced_service(
        ns, {"metadata": {"name": "web"}, "spec": {"selector": labels, "ports": [{"port": 80}]}}
    )
    return configmaps + 2


def one_size(local: VeleroInstall, dr: VeleroInstall, size: int) -> dict[str, float]:
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    objects = fill(local, ns, max(0, size - 2))
    try:
        started = time.monotonic()
        done = backup(
            namespaces=[ns], velero_install=VeleroInstall.load("local"), verify_contents=True
        )
        backup_wall = time.monotonic() - started
        started = time.monotonic()
        velero.wait_for(dr, "backups", done["name"], velero.phase_in("Completed"), 120, "sync")
        sync = time.monotonic() - started
        started = time.monotonic()
        drill = dr_drill(
            backup=done["name"], velero_install=VeleroInstall.load("dr"), timeout_seconds=600
        )
        drill_wall = time.monotonic() - started
    finally:
        client.CoreV1Api(api_for(local.cluster)).delete_namespace(ns)
    return {
        "objects": objects,
        "items": done["items"],
        "backup_wall": backup_wall,
        "velero_backup": done["seconds"],
        "kib": done["bytes"] / 1024,
        "sync": sync,
        "rto": drill["rto_seconds"],
        "rpo": drill["rpo_seconds"],
        "drill_wall": drill_wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    args = parser.parse_args()
    local, dr = VeleroInstall.load("local"), VeleroInstall.load("dr")
    rows = [one_size(local, dr, n) for n in args.sizes]
    print(
        f"{'objects':>8} {'items':>6} {'KiB':>8} {'backup wall':>12} {'velero':>8} "
        f"{'dr sync':>8} {'restore RTO':>12} {'drill wall':>11}"
    )
    for r in rows:
        print(
            f"{r['objects']:>8} {r['items']:>6} {r['kib']:>8.1f} {r['backup_wall']:>11.1f}s "
            f"{r['velero_backup']:>7.1f}s {r['sync']:>7.1f}s {r['rto']:>11.1f}s "
            f"{r['drill_wall']:>10.1f}s"
        )
    first = rows[0]
    for r in rows[1:]:
        ratio = r["objects"] / first["objects"]
        print(
            f"{r['objects']} vs {first['objects']} objects ({ratio:.0f}x): backup "
            f"{r['backup_wall'] / first['backup_wall']:.2f}x, restore RTO "
            f"{r['rto'] / first['rto']:.2f}x"
        )


if __name__ == "__main__":
    main()
