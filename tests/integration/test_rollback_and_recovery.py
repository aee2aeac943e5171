"""The manual rollback flow, and a crashed release (really killed) finished by a re-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from kubernetes import client

from blocks import KubernetesCluster
from core.errors import ConfigError
from flows.rollback import rollback
from tasks import kube
from tests.integration.release_helpers import (
    V1,
    V2,
    V3,
    Scripted,
    deployments,
    release_flow,
    resume_when_paused,
    settle,
    spec,
)

ROLLING = {"rolling": {"maxSurge": 1, "maxUnavailable": 0}}
CANARY = {"canary": {"steps": [{"setWeight": 40}, {"pause": {}}, {"setWeight": 80}]}}
ROOT = Path(__file__).parents[2]


@pytest.fixture
def cluster(platform) -> KubernetesCluster:
    return KubernetesCluster.load("local")


@pytest.fixture
def health_url():
    class Healthy(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"status": "healthy", "version": "v1", "checks": {}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Healthy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/health"
    server.shutdown()


def test_manual_rollback_to_previous_and_given_revision(cluster, namespace, health_url) -> None:
    for image in (V1, V2, V3):
        assert release_flow(spec(namespace, image, ROLLING), Scripted()).ok
    done = rollback("web", namespace, health_url=health_url)
    assert (done["from"], done["to"], done["image"]) == (3, 2, V2)
    assert done["health"]["status"] == "healthy"
    assert deployments(cluster, namespace) == {"web": (V2, 3, 3)}

    assert rollback("web", namespace, to_revision=1)["image"] == V1
    assert deployments(cluster, namespace) == {"web": (V1, 3, 3)}
    with pytest.raises(ConfigError, match="revision 9 does not exist: choose one of"):
        rollback("web", namespace, to_revision=9)
    with pytest.raises(ConfigError, match="no Deployment 'nope'"):
        rollback("nope", namespace)
    assert deployments(cluster, namespace) == {"web": (V1, 3, 3)}


CRASHING_RUN = """
import sys
from tests.integration.release_helpers import Scripted, release_flow, spec
from tests.integration.test_rollback_and_recovery import CANARY
release_flow(spec(sys.argv[1], sys.argv[2], CANARY, replicas=5), Scripted())
"""


def _record(cluster: KubernetesCluster, ns: str) -> dict | None:
    core = client.CoreV1Api(kube.api_for(cluster))
    try:
        return json.loads(core.read_namespaced_config_map("web-release", ns).data["record"])
    except client.exceptions.ApiException:
        return None


def test_crashed_release_is_finished_by_a_rerun(cluster, namespace, platform) -> None:
    assert release_flow(spec(namespace, V1, CANARY, replicas=5), Scripted()).ok
    env = {**os.environ, **platform.env(), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHING_RUN, namespace, V2],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:  # until the crashing run passed step 1 (canary at 40%)
            rec = _record(cluster, namespace)
            if rec and rec["step_index"] >= 1 and rec["image"] == V2:
                break
            time.sleep(0.5)  # bounded by the deadline
        else:
            pytest.fail("the first run never reached its pause")
        assert deployments(cluster, namespace)["web-canary"][:2] == (V2, 2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # a crash: no cleanup, the lock lease is left behind
        proc.wait(10)

    answer = {"choice": "promote", "decided_by": "ana"}
    resume_when_paused([answer], timeout=300, flow_name="release-under-test")
    rerun = release_flow(spec(namespace, V2, CANARY, replicas=5), Scripted())
    assert rerun.ok, rerun.summary
    actions = [e.action for e in rerun.journal]
    assert not any(a.startswith("apply canary") for a in actions)  # step 1 was not redone
    want = {"web": (V2, 5, 5), "web-canary": (V2, 0, 0)}
    assert settle(cluster, namespace, want) == want  # readyReplicas follows the pods' end
    assert _record(cluster, namespace) is None  # the finished release forgot its record
