"""The `kyb` command line on the real platform: what a person sees, its JSON, its exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from typer.testing import CliRunner

from blocks import Environment, KubernetesCluster, VeleroInstall
from cli.main import app
from flows.release.flow import release
from tasks import kube, velero
from tests.integration.release_helpers import V1, V2, settle, spec
from tests.integration.workers import deployed, run_once

pytestmark = pytest.mark.platform
KYB = str(Path(sys.executable).parent / "kyb")  # the console script `uv sync` installs
CANARY = {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}


def kyb(*args: str):
    return CliRunner().invoke(app, list(args))


def kyb_json(*args: str) -> dict:
    result = kyb(*args, "--output", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


class Person:
    """Someone at another terminal: runs the real `kyb` script (own process, own exit codes)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = {**os.environ, **env}

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [KYB, *args], env=self.env, capture_output=True, text=True, timeout=120, check=False
        )

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [KYB, *args], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def when_paused(
        self, ns: str, then: list[str], seen: list, timeout: float = 120
    ) -> threading.Thread:
        """Watch `kyb release get` until the release of web in `ns` pauses, then run `then`."""

        def work() -> None:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                got = self.run("release", "get", "web", "-n", ns, "-o", "json")
                shown = json.loads(got.stdout) if got.returncode == 0 else {}
                if (shown.get("run") or {}).get("paused"):
                    seen.append(shown)
                    seen.append(self.run(*then))
                    return
                time.sleep(1)  # bounded by the deadline: a person looking again

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        return thread


@pytest.fixture
def cluster(platform) -> KubernetesCluster:
    return KubernetesCluster.load("local")


@pytest.fixture
def person(platform) -> Person:
    return Person(platform.env())


def test_env_ls_lists_the_saved_environments(platform) -> None:
    rows = {r["name"]: r for r in kyb_json("env", "ls")["environments"]}
    assert rows["staging"]["namespace"] == "kyb-staging"
    assert rows["production"]["namespace"] == "kyb-production"
    assert rows["production"]["approval"] is True
    text = kyb("env", "ls").stdout
    assert "NAMESPACE" in text and "kyb-production" in text
    assert "kubeconfig" not in text  # names of blocks only, never their credentials


def test_release_get_shows_workloads_pods_and_run(platform, cluster, namespace) -> None:
    release(spec=spec(namespace, V1, CANARY, replicas=2))
    settle(cluster, namespace, {"web": (V1, 2, 2)})
    shown = kyb_json("release", "get", "web", "-n", namespace)
    stable = next(w for w in shown["workloads"] if w["track"] == "stable")
    assert (stable["name"], stable["image"], stable["desired"], stable["ready"]) == (
        "web",
        V1,
        2,
        2,
    )
    assert shown["strategy"] == "canary"
    web_pods = [p for p in shown["pods"] if p["workload"] == "web"]
    assert len(web_pods) == 2 and all(p["image"] == V1 for p in web_pods)
    assert shown["run"]["state"] == "Completed"
    assert shown["run"]["result"]["outcome"] == "succeeded"
    text = kyb("release", "get", "web", "-n", namespace)
    assert text.exit_code == 0
    assert "Strategy:   canary" in text.stdout and V1 in text.stdout and "Completed" in text.stdout


def test_release_get_of_an_unknown_app_exits_3(platform, namespace) -> None:
    result = kyb("release", "get", "nothing-here", "-n", namespace)
    assert result.exit_code == 3
    assert "no app 'nothing-here'" in result.stderr and result.stdout == ""
    assert kyb("release", "get", "web", "-n", namespace, "--cluster", "no-such").exit_code == 3


def test_promote_with_nothing_paused_exits_4(platform, namespace) -> None:
    result = kyb("release", "promote", "web", "-n", namespace, "--by", "ana")
    assert result.exit_code == 4
    assert "no paused release of 'web'" in result.stderr


def test_promote_resumes_the_paused_canary_and_records_who(person, cluster, namespace) -> None:
    release(spec=spec(namespace, V1, CANARY, replicas=2))
    seen: list = []
    promote = ["release", "promote", "web", "-n", namespace, "--by", "ana", "--reason", "green"]
    thread = person.when_paused(namespace, [*promote, "-o", "json"], seen)
    out = release(spec=spec(namespace, V2, CANARY, replicas=2))
    thread.join(10)
    assert out["image"] == V2
    paused_view, promoted = seen
    assert paused_view["step"] == "step 2/2"  # at the pause, after setWeight 50
    assert promoted.returncode == 0, promoted.stderr
    assert json.loads(promoted.stdout)["decided_by"] == "ana"
    settle(cluster, namespace, {"web": (V2, 2, 2), "web-canary": (V2, 0, 0)})
    shown = kyb_json("release", "get", "web", "-n", namespace)
    assert shown["run"]["result"]["decisions"] == [
        {"choice": "promote", "decided_by": "ana", "reason": "green"}
    ]
    assert shown["step"] is None  # the release ended: no run record left


def test_abort_rolls_the_paused_canary_back(person, cluster, namespace) -> None:
    release(spec=spec(namespace, V1, CANARY, replicas=2))
    seen: list = []
    abort = ["release", "abort", "web", "-n", namespace, "--by", "bo", "--reason", "latency"]
    thread = person.when_paused(namespace, abort, seen)
    state = release(spec=spec(namespace, V2, CANARY, replicas=2), return_state=True)
    thread.join(10)
    assert state.is_failed()
    assert seen[1].returncode == 0, seen[1].stderr
    assert "abort sent to" in seen[1].stdout
    shown = kyb_json("release", "get", "web", "-n", namespace)
    assert shown["run"]["state"] == "Failed"
    assert shown["run"]["result"]["decisions"][0]["decided_by"] == "bo"
    stable = next(w for w in shown["workloads"] if w["track"] == "stable")
    assert stable["image"] == V1


ROLLOUT = """\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template: {metadata: {labels: {app: web}}, spec: {containers: [{name: web, image: web:x}]}}
  strategy: {canary: {steps: [{setWeight: 50}, {pause: {duration: 1s}}]}}
"""


@pytest.fixture
def pool(platform) -> Iterator[str]:
    """A work pool of this test's own, with the release, rollback and backup flows on it."""
    flows = (
        "flows/release/flow.py:release",
        "flows/rollback.py:rollback",
        "flows/backup.py:backup",
    )
    with deployed(flows) as name:
        yield name


@pytest.fixture
def environment(cluster, namespace) -> Iterator[str]:
    """A saved Environment releasing to this test's namespace (no analyses)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    Environment(name="cli", cluster=cluster, namespace=namespace, analysis_templates=[]).save(name)
    yield name
    Environment.delete(name)


def served(person: Person, waiting: subprocess.Popen, pool: str, deployment: str) -> str:
    """Once `kyb` made a run of `deployment`, a worker of `pool` runs it; `kyb`'s stdout, rc 0."""
    deadline = time.monotonic() + 60
    with get_client(sync_client=True) as client:
        found = client.read_deployment_by_name(deployment)
        while not client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[found.id]))
        ):
            assert time.monotonic() < deadline, f"no run of {deployment} was created"
            time.sleep(0.5)  # bounded by the deadline: `kyb` creates it
    run_once(pool, person.env, timeout=600)
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err
    return out


def test_start_and_undo_run_the_deployments_and_wait(
    person, pool, environment, cluster, namespace, tmp_path
) -> None:
    rollout = tmp_path / "rollout.yaml"
    rollout.write_text(ROLLOUT)
    start = [
        *("release", "start", "web", "--env", environment, "--rollout", str(rollout)),
        *("--image", V1, "--deployment", f"release/{pool}", "--wait", "-o", "json"),
    ]
    out = served(person, person.start(*start), pool, f"release/{pool}")
    assert json.loads(out)["run"]["state"] == "Completed"
    assert settle(cluster, namespace, {"web": (V1, 2, 2)})["web"] == (V1, 2, 2)
    release(environment=Environment.load(environment), app="web", image=V2, rollout=ROLLOUT)
    undo = ["release", "undo", "web", "-n", namespace, "--deployment", f"rollback/{pool}"]
    out = served(person, person.start(*undo, "--wait"), pool, f"rollback/{pool}")
    assert "Completed" in out  # text: the states the run went through
    shown = kyb_json("release", "get", "web", "-n", namespace)
    assert next(w for w in shown["workloads"] if w["track"] == "stable")["image"] == V1


def test_start_names_a_missing_environment_and_exits_3(platform) -> None:
    result = kyb("release", "start", "web", "--env", "no-such-env", "--image", V1)
    assert result.exit_code == 3
    assert "no KYB Environment block named 'no-such-env'" in result.stderr


def test_watch_shows_the_app_again_at_each_change(person, cluster, namespace) -> None:
    release(spec=spec(namespace, V1, CANARY, replicas=2))
    settle(cluster, namespace, {"web": (V1, 2, 2)})
    get = ["release", "get", "web", "-n", namespace, "--watch", "--timeout", "60", "-o", "json"]
    watching = person.start(*get)
    try:
        first = json.loads(watching.stdout.readline())
        assert _stable(first)[:2] == (2, 2)
        kube.scale.fn(cluster, namespace, "web", 3)
        seen = [first]
        while _stable(seen[-1]) != (3, 3):
            line = watching.stdout.readline()  # the watch ends by --timeout at the latest
            assert line, f"the watch ended without showing 3 ready: {seen[-1]['workloads']}"
            seen.append(json.loads(line))
    finally:
        watching.send_signal(signal.SIGINT)
        _, err = watching.communicate(timeout=30)
    assert watching.returncode == 0, err  # Ctrl-C ends a watch normally
    assert len(seen) >= 2


def test_watch_shows_the_canary_reach_its_pause(person, cluster, namespace) -> None:
    """No pod changes at a pause: the watch still shows the run Paused (it re-reads Prefect)."""
    release(spec=spec(namespace, V1, CANARY, replicas=2))
    settle(cluster, namespace, {"web": (V1, 2, 2)})
    watching = person.start("release", "get", "web", "-n", namespace, "--watch", "--timeout", "150")
    seen: list[str] = []
    promoted: list = []

    def look() -> None:
        for line in watching.stdout:  # until the watch ends: Ctrl-C below, or --timeout
            seen.append(line)
            if line.startswith("Last run:") and "Paused" in line:
                break
        promoted.append(person.run("release", "promote", "web", "-n", namespace, "--by", "w"))

    looking = threading.Thread(target=look, daemon=True)
    looking.start()
    try:
        out = release(spec=spec(namespace, V2, CANARY, replicas=2))  # paused until promoted
    finally:
        looking.join(30)
        watching.send_signal(signal.SIGINT)
        _, err = watching.communicate(timeout=30)
    assert any(ln.startswith("Last run:") and "Paused" in ln for ln in seen), "".join(seen)
    assert promoted[0].returncode == 0, promoted[0].stderr
    assert out["image"] == V2 and watching.returncode == 0, err


def _stable(shown: dict) -> tuple[int, int]:
    web = next(w for w in shown["workloads"] if w["track"] == "stable")
    return web["desired"], web["ready"]


def test_backup_ls_shows_a_backup_velero_made(platform, namespace) -> None:
    install = VeleroInstall.load("local")
    name = f"t-cli-{uuid.uuid4().hex[:8]}"
    manifest = {
        "apiVersion": "velero.io/v1",
        "kind": "Backup",
        "metadata": {"name": name},
        "spec": {"includedNamespaces": [namespace], "ttl": "1h0m0s", "storageLocation": "default"},
    }
    velero.create(install, "backups", manifest)
    velero.wait_for(install, "backups", name, velero.phase_in("Completed"), 120, "backup")
    rows = {r["name"]: r for r in kyb_json("backup", "ls", "--limit", "1000")["backups"]}
    assert rows[name]["phase"] == "Completed"
    assert rows[name]["namespaces"] == namespace and rows[name]["expires"]
    assert name in kyb("backup", "ls", "--limit", "1000").stdout
    assert kyb("backup", "ls", "--velero", "no-such").exit_code == 3


def test_backup_create_runs_the_backup_deployment(person, pool, namespace) -> None:
    create = ["backup", "create", "-n", namespace, "--ttl", "1h", "--deployment", f"backup/{pool}"]
    out = served(person, person.start(*create, "--wait", "-o", "json"), pool, f"backup/{pool}")
    assert json.loads(out)["run"]["state"] == "Completed"
    rows = kyb_json("backup", "ls", "--limit", "1000")["backups"]
    assert [r["phase"] for r in rows if r["namespaces"] == namespace] == ["Completed"]
