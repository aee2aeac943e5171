"""`kyb backup restore`, `backup confirm-dns`, `drill` and `delivery` on the real platform.

Backups of a test namespace are made as tests/integration/test_backup_dr.py makes them; the DR and
drill runs go through deployments of the real flows on a work pool of the test's own.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactCreate
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from prefect.states import Completed, Running

from blocks import VeleroInstall
from flows.backup import backup
from flows.delivery import delivery
from tasks import velero
from tasks.kube import api_for
from tests.integration import test_backup_dr as bdr
from tests.integration.test_cli import Person, kyb, kyb_json, served
from tests.integration.workers import deployed

pytestmark = pytest.mark.platform


@pytest.fixture
def person(platform) -> Person:
    return Person(platform.env())


@pytest.fixture
def local(platform) -> VeleroInstall:
    return VeleroInstall.load("local")


@pytest.fixture
def dr(platform) -> VeleroInstall:
    return VeleroInstall.load("dr")


@pytest.fixture
def app_ns(local: VeleroInstall, dr: VeleroInstall) -> Iterator[str]:
    """A namespace with a Deployment, Service, ConfigMap and Secret; deleted in both clusters."""
    ns = f"bk-{uuid.uuid4().hex[:8]}"
    bdr._create(local.cluster, ns)
    yield ns
    bdr._delete_ns(local.cluster, ns)
    bdr._delete_ns(dr.cluster, ns)


@pytest.fixture
def dr_pool(platform) -> Iterator[str]:
    """A work pool of this test's own with the disaster-recovery and dr-drill flows on it."""
    flows = ("flows/disaster_recovery.py:disaster_recovery", "flows/dr_drill.py:dr_drill")
    with deployed(flows) as name:
        yield name


@pytest.fixture
def synced(local: VeleroInstall, dr: VeleroInstall, app_ns: str) -> str:
    """A backup of `app_ns` made in the main cluster, seen by the DR cluster's Velero."""
    name = backup(namespaces=[app_ns], velero_install=local)["name"]
    velero.wait_for(dr, "backups", name, velero.phase_in("Completed"), 90, "sync")
    return name


def test_restore_into_the_dr_cluster_waits_to_the_end(person, dr_pool, dr, app_ns, synced) -> None:
    restore = [
        *("backup", "restore", synced, "--namespaces", app_ns, "--velero", "dr"),
        *("--confirm-dns-as", "ci", "--dns-service", f"{app_ns}/web", "--restore-timeout", "300"),
        *("--deployment", f"disaster-recovery/{dr_pool}", "--wait", "-o", "json"),
    ]
    out = json.loads(
        served(person, person.start(*restore), dr_pool, f"disaster-recovery/{dr_pool}")
    )
    assert out["run"]["state"] == "Completed"
    assert out["report"]["backup"] == synced and out["report"]["rto_seconds"] > 0
    assert "confirmed by **ci**" in out["report"]["dns"]
    assert bdr._ready(dr.cluster, app_ns) == (bdr.IMAGE, 3)  # serving in the DR cluster


def test_restore_of_a_missing_backup_exits_3_and_names_what_exists(platform, synced) -> None:
    result = kyb("backup", "restore", "no-such-backup", "--confirm-dns-as", "ci")
    assert result.exit_code == 3, result.stderr
    assert "no backup named 'no-such-backup'" in result.stderr
    assert "one of" in result.stderr and result.stdout == ""
    held = kyb("backup", "restore", synced, "--namespaces", "not-there")
    assert held.exit_code == 3 and "does not hold namespace(s) ['not-there']" in held.stderr


def test_drill_waits_and_prints_its_verdict(person, dr_pool, dr, app_ns, synced) -> None:
    drill = ["drill", synced, "--deployment", f"dr-drill/{dr_pool}", "--wait"]
    out = served(person, person.start(*drill), dr_pool, f"dr-drill/{dr_pool}")
    assert f"drill of {synced}: PASSED" in out
    assert "RTO " in out and "RPO " in out
    assert "objects restored as backed up" in out
    left = {n.metadata.name for n in client.CoreV1Api(api_for(dr.cluster)).list_namespace().items}
    assert not [n for n in left if n.startswith("drill-") and n.endswith(app_ns)]  # cleaned up


def test_confirm_dns_answers_the_paused_recovery(person, dr_pool, app_ns, synced) -> None:
    restore = [
        *("backup", "restore", synced, "-n", app_ns, "--dns-service", f"{app_ns}/web"),
        *("--deployment", f"disaster-recovery/{dr_pool}", "--wait", "--restore-timeout", "300"),
    ]
    waiting = person.start(*restore)
    run = _run_name(waiting)
    answered: list = []

    def confirm() -> None:  # another terminal, once the run waits at its DNS step
        deadline = time.monotonic() + 300
        while not _paused(run):
            assert time.monotonic() < deadline, f"{run} never paused"
            time.sleep(1)  # bounded by the deadline: the restore takes a minute or so
        time.sleep(3)  # long enough for the --wait (reading every 2 s) to show the pause
        answer = ["backup", "confirm-dns", "--by", "ana", "--note", "ttl 60", "--run", run]
        answered.append(person.run(*answer))  # --run: never another session's paused recovery

    thread = threading.Thread(target=confirm, daemon=True)
    thread.start()
    out = served(person, waiting, dr_pool, f"disaster-recovery/{dr_pool}")
    thread.join(30)
    assert answered and answered[0].returncode == 0, answered and answered[0].stderr
    assert f"DNS switched sent to {run}" in answered[0].stdout
    assert f"{run}: Paused" in out and "kyb backup confirm-dns" in out  # --wait showed it
    assert "confirmed by **ana** (ttl 60)" in out


def _run_name(waiting: subprocess.Popen) -> str:
    """The run `kyb ... --wait` started, from its text output ("started NAME (ID) of ...")."""
    for line in waiting.stdout or ():  # "restoring ...", then "started ..."
        if line.startswith("started "):
            return line.split()[1]
    raise AssertionError("kyb did not say which run it started")


def _paused(name: str) -> bool:
    with get_client(sync_client=True) as c:
        found = c.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])))
    return bool(found) and found[0].state is not None and found[0].state.is_paused()


def test_confirm_dns_with_no_paused_recovery_exits_4(platform) -> None:
    result = kyb("backup", "confirm-dns", "--by", "ana", "--run", f"no-such-{uuid.uuid4().hex}")
    assert result.exit_code == 4 and "paused at its DNS step" in result.stderr


REPORT = """\
# Delivery of `{app}` at `0123456789ab` (develop)

Image `127.0.0.1:5001/{app}@sha256:abc`

| stage | seconds |
|---|---|
| tests | 1.5 |

| environment | result | strategy | release |
|---|---|---|---|
| staging | delivered | rolling | done |"""


@pytest.fixture
def delivered(platform) -> Iterator[tuple[str, str, str]]:
    """A delivery run made through the API (app, run name, id): Completed, with its report."""
    app = f"t-app-{uuid.uuid4().hex[:8]}"
    parameters = {
        "commit": "0123456789abcdef0123",
        "branch": "develop",
        "app": app,
        "environment": {"$ref": {"block_document_slug": "kyb-environment/staging"}},
    }
    with get_client(sync_client=True) as c:
        run = c.create_flow_run(delivery, parameters=parameters, state=Running())
        c.create_artifact(
            ArtifactCreate(
                key=f"delivery-{app}",
                type="markdown",
                data=REPORT.format(app=app),
                flow_run_id=run.id,
            )
        )
        c.set_flow_run_state(run.id, Completed(), force=True)
    yield app, run.name, str(run.id)
    with get_client(sync_client=True) as c:
        c.delete_flow_run(run.id)


def test_delivery_ls_and_get_show_a_delivery_run(platform, delivered) -> None:
    app, name, run_id = delivered
    rows = kyb_json("delivery", "ls", "--app", app)["deliveries"]
    assert [(r["name"], r["commit"], r["branch"], r["environment"]) for r in rows] == [
        (name, "0123456789ab", "develop", "staging")
    ]
    assert rows[0]["state"] == "Completed" and rows[0]["duration_seconds"] is not None
    text = kyb("delivery", "ls", "--app", app).stdout
    assert "COMMIT" in text and name in text and "staging" in text
    shown = kyb_json("delivery", "get", name)
    assert shown["id"] == run_id and shown["report"]["image"].endswith("@sha256:abc")
    assert shown["report"]["environments"][0]["result"] == "delivered"
    assert kyb_json("delivery", "get", run_id)["name"] == name
    assert "Delivered:    staging: delivered (rolling) done" in kyb("delivery", "get", name).stdout


def test_delivery_get_of_an_unknown_run_exits_3(platform) -> None:
    result = kyb("delivery", "get", f"no-such-run-{uuid.uuid4().hex[:6]}")
    assert result.exit_code == 3 and "no delivery run" in result.stderr
    assert kyb("delivery", "get", str(uuid.uuid4())).exit_code == 3
