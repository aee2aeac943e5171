"""The pipeline watches itself: its alert rules pass promtool, and one fires on the platform.

The platform runs the metrics exporter, its Prometheus scrapes it and loads
deploy/prometheus/kyb-pipeline.rules.yml (sandbox/components/metrics_exporter.py).
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.states import Completed, Failed, Running

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:  # .ci/run installs it with the platform (Debian's prometheus package)
        pytest.fail("promtool is missing: `uv run sandbox up` installs it (Debian's prometheus)")
    return found


def test_the_rules_pass_promtool_and_their_unit_tests() -> None:
    promtool = _promtool()
    for args in (
        ["check", "rules", "kyb-pipeline.rules.yml"],
        ["test", "rules", "kyb-pipeline.rules.test.yml"],
    ):
        done = subprocess.run(
            [promtool, *args], cwd=RULES, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr
    tested = (RULES / "kyb-pipeline.rules.test.yml").read_text()
    alerts = [
        line.split(":", 1)[1].strip()
        for line in (RULES / "kyb-pipeline.rules.yml").read_text().splitlines()
        if line.strip().startswith("- alert:")
    ]
    assert len(alerts) == 9
    assert all(f"alertname: {a}" in tested for a in alerts), "every alert has a unit test"


def test_the_platform_s_prometheus_loads_the_rules(platform) -> None:
    got = httpx.get(f"{platform.prometheus.url}/api/v1/rules", timeout=10).json()
    groups = {g["name"]: g for g in got["data"]["groups"]}
    assert "kyb-pipeline" in groups
    names = {r["name"] for r in groups["kyb-pipeline"]["rules"]}
    assert {"KybBackupTooOld", "KybReleasePausedPastTimeout", "KybDrillFailed"} <= names


@flow(name="delivery")
def _delivery(app: str) -> None:
    """Only its name and `app`: the runs below are made through the API, as a worker's would be."""


def _firing(platform, app: str) -> dict | None:
    got = httpx.get(f"{platform.prometheus.url}/api/v1/alerts", timeout=10).json()
    for alert in got["data"]["alerts"]:
        labels = alert["labels"]
        if labels["alertname"] == "KybDeliveriesFailingInARow" and labels.get("app") == app:
            return alert
    return None


def test_three_failed_deliveries_in_a_row_fire_an_alert(platform) -> None:
    app = f"alerted-{uuid.uuid4().hex[:6]}"
    with get_client(sync_client=True) as client:
        for end in (Completed(), Failed(), Failed(), Failed()):  # a success, then three failures
            run = client.create_flow_run(_delivery, parameters={"app": app}, state=Running())
            client.set_flow_run_state(run.id, end, force=True)
    deadline = time.monotonic() + 60  # scrapes every 2 s, rules every 2 s, a 5 s cache
    while (alert := _firing(platform, app)) is None and time.monotonic() < deadline:
        time.sleep(1)
    assert alert is not None, "KybDeliveriesFailingInARow did not fire within 60 s"
    assert alert["state"] == "firing"
    assert alert["annotations"]["summary"] == f"The last 3 deliveries of {app} failed"
