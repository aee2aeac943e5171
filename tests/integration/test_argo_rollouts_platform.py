"""Argo Rollouts' controller on the platform (sandbox/components/argo_rollouts.py).

Opt-in: `sandbox up` alone never builds or starts it; `sandbox up argo-rollouts` does, and then
it listens on loopback only, runs as its own ServiceAccount with a token nobody else sees, and
`status` shows it. Its build is tested from an empty cache folder, as on a new machine.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx

from sandbox.components.argo_rollouts import ArgoRollouts
from sandbox.platform import Platform
from sandbox.procs import run
from sandbox.settings import Settings

LOOPBACK = "0100007F"  # 127.0.0.1 as /proc/net/tcp writes it


def _listening(pid: int) -> set[tuple[str, int]]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = str(fd.readlink()) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                address, port = fields[1].split(":")
                found.add((address, int(port, 16)))
    return found


def test_it_is_not_part_of_the_default_platform(platform: Platform) -> None:
    assert platform.argo_rollouts not in platform.components
    assert platform.argo_rollouts in platform.optional
    names = [s.name for s in platform.status()]
    assert "argo-rollouts" in names


def test_it_runs_as_its_own_account_on_loopback_only(
    platform: Platform, argo_rollouts: ArgoRollouts
) -> None:
    (status,) = [s for s in platform.status() if s.name == "argo-rollouts"]
    assert status.state == "running" and status.address == argo_rollouts.metrics_url
    pid = argo_rollouts.daemon.pid()
    assert pid is not None
    assert _listening(pid) == {
        (LOOPBACK, argo_rollouts.metrics_port),
        (LOOPBACK, argo_rollouts.healthz_port),
    }
    metrics = httpx.get(argo_rollouts.metrics_url, timeout=5).text
    assert "controller_clientset_k8s_request_total" in metrics or "rollout_info" in metrics
    token = argo_rollouts.token_file.read_text()
    assert oct(argo_rollouts.token_file.stat().st_mode & 0o777) == "0o600"
    assert oct(argo_rollouts.kubeconfig.stat().st_mode & 0o777) == "0o600"
    assert token not in argo_rollouts.kubeconfig.read_text()  # it names the file, not the token
    assert token not in argo_rollouts.daemon.logfile.read_text()
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    assert token.encode() not in environ
    assert b"POD_NAMESPACE=argo-rollouts" in environ


def test_a_cold_build_gives_a_controller_that_says_its_version(
    platform: Platform, tmp_path, monkeypatch
) -> None:
    """A new machine: both programs build into an empty cache folder (Go's own caches warm)."""
    monkeypatch.setenv("KYB_CACHE_DIR", str(tmp_path / "cache"))
    cold = ArgoRollouts(Settings(), platform.cluster)
    assert not cold.program.exists() and not cold.plugin.exists()
    cold.install()
    assert set(cold.build_seconds) == {
        "argo-rollouts v1.10.1",
        "kubectl-argo-rollouts v1.10.1",
    }, cold.build_seconds
    assert run([str(cold.program), "--version"], "test").startswith("v1.10.1")
    assert "v1.10.1" in run([str(cold.plugin), "version"], "test")
    cold.install()  # cached now: nothing is built again
    assert len(cold.build_seconds) == 2
    shutil.rmtree(tmp_path / "cache")
