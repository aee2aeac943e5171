"""CPU seconds of the Prefect server (with its database) and of client processes, from /proc."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sandbox.platform import Platform

TICK = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def tree(pid: int) -> list[int]:
    """`pid` and every process below it."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += _children(p)
    return out


def cpu_of(pids: Iterable[int]) -> float:
    """User plus system CPU seconds of these processes (and their reaped children)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended: its CPU went to its parent's reaped-children counters
        # utime, stime, cutime, cstime: fields 14-17 of stat, 12-15 after "pid (comm) "
        total += sum(int(f) for f in fields[11:15]) / TICK
    return total


@dataclass
class Reading:
    """CPU seconds at one moment: the server side (Prefect and PostgreSQL), clients, wall."""

    server: float
    client: float
    wall: float

    def __sub__(self, other: Reading) -> Reading:
        return Reading(
            self.server - other.server, self.client - other.client, self.wall - other.wall
        )


class CpuMeter:
    """Reads the platform's Prefect server and database trees, this process and `clients`."""

    def __init__(self, plat: Platform | None = None) -> None:
        plat = plat or Platform()
        roots = [plat.prefect.daemon.pid(), plat.postgres.daemon.pid()]
        self.server_roots = [p for p in roots if p]
        self.client_roots: list[int] = [os.getpid()]

    def read(self) -> Reading:
        """The counters now (this process's own threads and children included)."""
        server = cpu_of(p for root in self.server_roots for p in tree(root))
        clients = cpu_of(p for root in self.client_roots for p in tree(root))
        return Reading(server, clients, time.monotonic())


def quiet(meter: CpuMeter, rate: float = 0.05, timeout: float = 120) -> None:
    """Wait until the server spends under `rate` CPU seconds per second (its backlog is done)."""
    deadline = time.monotonic() + timeout
    last = meter.read()
    while time.monotonic() < deadline:
        time.sleep(1)  # /proc has no watch: sample one-second windows
        now = meter.read()
        if (now.server - last.server) / (now.wall - last.wall) < rate:
            return
        last = now
