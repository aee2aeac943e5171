"""Measure `sandbox up`: cold (new state), warm (restart on kept state), reuse (already running)."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PORT_VARS = [
    "KYB_REGISTRY_PORT",
    "KYB_PROMETHEUS_PORT",
    "KYB_PREFECT_PORT",
    "KYB_APISERVER_PORT",
    "KYB_ETCD_PORT",
    "KYB_ETCD_PEER_PORT",
    "KYB_KCM_PORT",
    "KYB_SCHEDULER_PORT",
    "KYB_KWOK_PORT",
    "KYB_S3_PORT",
    "KYB_DR_APISERVER_PORT",
    "KYB_DR_ETCD_PORT",
    "KYB_DR_ETCD_PEER_PORT",
    "KYB_DR_KCM_PORT",
    "KYB_DR_SCHEDULER_PORT",
    "KYB_DR_KWOK_PORT",
    "KYB_VELERO_METRICS_PORT",
    "KYB_VELERO_PROFILER_PORT",
    "KYB_DR_VELERO_METRICS_PORT",
    "KYB_DR_VELERO_PROFILER_PORT",
]


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _starts(timings) -> dict[str, float]:
    return {c: s for c, phase, s in timings.rows if phase == "start"}


def measure_up() -> None:
    """Cold, warm and reuse `up` of a throwaway platform; print seconds per component."""
    from sandbox.platform import Platform
    from sandbox.settings import Settings

    home = tempfile.mkdtemp(prefix="kyb-bench-")
    os.environ["KYB_SANDBOX_HOME"] = home
    ports = _free_ports(len(PORT_VARS))
    os.environ.update({var: str(port) for var, port in zip(PORT_VARS, ports, strict=True)})
    plat = Platform(Settings())
    quiet = lambda _m: None  # noqa: E731
    try:
        runs = {}
        t0 = time.monotonic()
        runs["cold"] = _starts(plat.up(say=quiet))
        runs["cold"]["(all, with blocks)"] = time.monotonic() - t0
        t0 = time.monotonic()
        runs["reuse"] = _starts(plat.up(say=quiet))
        runs["reuse"]["(all, with blocks)"] = time.monotonic() - t0
        plat.down()
        t0 = time.monotonic()
        runs["warm"] = _starts(plat.up(say=quiet))
        runs["warm"]["(all, with blocks)"] = time.monotonic() - t0
    finally:
        plat.down()
        plat.cluster.delete()
        plat.dr_cluster.delete()
    print(f"sandbox up, seconds per component (state in {home}, binaries cached)")
    print(f"  {'component':<20}{'cold':>8}{'warm':>8}{'reuse':>8}{'cold/warm':>11}")
    for comp in runs["cold"]:
        cold, warm, reuse = (runs[k].get(comp, 0.0) for k in ("cold", "warm", "reuse"))
        ratio = f"{cold / warm:.1f}x" if warm > 0.05 else "-"
        print(f"  {comp:<20}{cold:8.1f}{warm:8.1f}{reuse:8.1f}{ratio:>11}")


def measure_build() -> None:
    """Time a cold build of the cluster, Velero and S3-store binaries (empty Go build cache)."""
    from sandbox.components.cluster import Cluster
    from sandbox.components.s3store import S3Store
    from sandbox.components.velero import Velero
    from sandbox.settings import Settings

    with tempfile.TemporaryDirectory(prefix="kyb-build-") as tmp:
        os.environ["KYB_CACHE_DIR"] = str(Path(tmp) / "cache")
        os.environ["GOCACHE"] = str(Path(tmp) / "gocache")
        settings = Settings()
        cluster, s3 = Cluster(settings), S3Store(settings)
        velero = Velero(settings, cluster, s3)
        t0 = time.monotonic()
        for comp in (cluster, s3, velero):
            comp.install()
        total = time.monotonic() - t0
    print("platform binaries, cold build (empty GOCACHE, modules already downloaded)")
    for comp in (cluster, s3, velero):
        for name, secs in comp.build_seconds.items():
            print(f"  {name:<30}{secs:8.1f}s")
    print(f"  {'total':<30}{total:8.1f}s")


def measure_tests() -> None:
    """Time the whole test suite against the running platform."""
    t0 = time.monotonic()
    done = subprocess.run(
        ["uv", "run", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    secs = time.monotonic() - t0
    print(f"test suite: {secs:.1f}s ({done.stdout.strip().splitlines()[-1]})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", action="store_true", help="also time a cold binary build")
    parser.add_argument("--tests", action="store_true", help="also time the test suite")
    args = parser.parse_args()
    if args.tests:
        measure_tests()
    measure_up()
    if args.build:
        measure_build()
