"""A release survives an apiserver restart mid-rollout; two releases of one app never interleave."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from kubernetes import client

from blocks import KubernetesCluster
from sandbox.platform import Platform
from tasks import kube
from tests.integration.release_helpers import (
    V1,
    V2,
    V3,
    Scripted,
    deployments,
    release_flow,
    settle,
    spec,
)

SLOW_CANARY = {
    "canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": 8}}, {"setWeight": 100}]}
}


@pytest.fixture
def cluster(platform) -> KubernetesCluster:
    return KubernetesCluster.load("local")


def _apiserver_up(platform: Platform) -> bool:
    return platform.cluster.status().state == "running"


def restart_apiserver(platform: Platform, down_seconds: float) -> None:
    """Stop the real kube-apiserver process and start it again with the same command line."""
    cluster_dir = platform.settings.kubeconfig.parent
    pidfile = cluster_dir / "pids" / "kube-apiserver.pid"
    pid = int(pidfile.read_text())
    proc = Path(f"/proc/{pid}")
    argv = [a.decode() for a in (proc / "cmdline").read_bytes().split(b"\0") if a]
    env = dict(
        e.decode().split("=", 1) for e in (proc / "environ").read_bytes().split(b"\0") if b"=" in e
    )
    cwd = os.readlink(proc / "cwd")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while proc.exists() and time.monotonic() < deadline:
        time.sleep(0.1)  # bounded: the apiserver shuts down within seconds
    time.sleep(down_seconds)  # the outage itself
    with (cluster_dir / "logs" / "kube-apiserver.log").open("ab") as log:
        new = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=log, stderr=log, start_new_session=True
        )
    pidfile.write_text(str(new.pid))


def _step(cluster: KubernetesCluster, ns: str) -> int:
    try:
        cm = client.CoreV1Api(kube.api_for(cluster)).read_namespaced_config_map("web-release", ns)
    except Exception:
        return -1
    return json.loads(cm.data["record"])["step_index"]


def test_apiserver_restart_mid_rollout_does_not_lose_the_release(platform, cluster, namespace):
    assert release_flow(spec(namespace, V1, SLOW_CANARY, replicas=4), Scripted()).ok
    results = []
    worker = threading.Thread(
        target=lambda: results.append(
            release_flow(spec(namespace, V2, SLOW_CANARY, replicas=4), Scripted())
        )
    )
    worker.start()
    try:
        deadline = time.monotonic() + 120
        while _step(cluster, namespace) < 1 and time.monotonic() < deadline:
            time.sleep(0.2)  # bounded: until the canary is at 50% and the pause starts
        restart_apiserver(platform, down_seconds=4)
    finally:
        worker.join(300)
        deadline = time.monotonic() + 60
        while not _apiserver_up(platform) and time.monotonic() < deadline:
            time.sleep(0.5)  # bounded: leave the platform healthy for the next tests
    assert results and results[0].ok, results and results[0].summary
    want = {"web": (V2, 4, 4), "web-canary": (V2, 0, 0)}
    assert settle(cluster, namespace, want) == want  # a scaled-down canary's pods may linger


def test_two_releases_of_one_app_never_interleave(cluster, namespace) -> None:
    fast = {"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": 2}}]}}
    assert release_flow(spec(namespace, V1, fast, replicas=2), Scripted()).ok
    results: dict[str, object] = {}

    def go(image: str) -> None:
        results[image] = release_flow(spec(namespace, image, fast, replicas=2), Scripted())

    threads = [threading.Thread(target=go, args=(img,)) for img in (V2, V3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    first, second = sorted(results.values(), key=lambda r: r.journal[0].started)
    assert first.ok and second.ok
    first_end = first.journal[-1].started
    assert second.journal[0].started >= first_end  # the second waited for the lock
    last_image = V2 if second is results[V2] else V3
    assert deployments(cluster, namespace)["web"] == (last_image, 2, 2)
