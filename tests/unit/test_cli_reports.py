"""`kyb`'s readers of the DR, drill and delivery reports, fed what the flows themselves write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cli.reports import (
    delivery_report,
    delivery_row,
    dr_summary,
    drill_verdict,
    human_seconds,
    recovery_times,
    render_dr,
    render_drill,
)
from core.recovery.drill import DrillFailure, DrillResult
from flows.disaster_recovery import DnsSwitch
from flows.disaster_recovery import _report as dr_report
from flows.dr_drill import _report as drill_report

TIMES = {"rto_seconds": 12.34, "rpo_seconds": 45.0}
CHECKED = {"deployments.apps": 1, "services": 1, "configmaps": 2}


def test_a_passed_drill_reads_as_passed_with_its_times_and_what_was_checked() -> None:
    text = drill_report("bk-1", DrillResult(checked=CHECKED), [], TIMES, {"a": "drill-a"})
    found = drill_verdict(text)
    assert found["passed"] is True and found["backup"] == "bk-1"
    assert (found["rto_seconds"], found["rpo_seconds"]) == (12.3, 45.0)
    assert found["checked"].startswith("drill passed: 4 objects restored as backed up")
    assert found["kinds"]["Deployment"] == {"checked": 1, "failed": 0}
    assert found["failures"] == [] and found["missing"] == [] and found["error"] is None
    shown = render_drill(found)
    assert "drill of bk-1: PASSED" in shown and "RTO 12.3 s, RPO 45 s" in shown


def test_a_failed_drill_names_what_differs_and_what_was_lost() -> None:
    bad = DrillResult(
        checked=CHECKED, findings=(DrillFailure("ConfigMap", "drill-a", "web-config", "missing"),)
    )
    text = drill_report("bk-2", bad, ["configmaps a/web-config"], TIMES, {"a": "drill-a"})
    found = drill_verdict(text)
    assert found["passed"] is False
    assert found["missing"] == ["configmaps a/web-config"]
    assert found["failures"] == ["ConfigMap drill-a/web-config: missing"]
    assert "FAILED" in render_drill(found) and "not restored: configmaps" in render_drill(found)


def test_a_drill_whose_restore_failed_says_why() -> None:
    found = drill_verdict(drill_report("bk-3", None, [], {}, {"a": "b"}, error="Velero: boom"))
    assert found["passed"] is False and found["error"] == "Velero: boom"
    assert "rto_seconds" not in found
    assert "restore failed: Velero: boom" in render_drill(found)


def test_a_dr_report_gives_times_verification_and_the_dns_step() -> None:
    dns = DnsSwitch(dns_updated=True, confirmed_by="ana", note="ttl 60")
    text = dr_report("bk-4", "2 to create", TIMES, dns, "127.0.0.10", "kyb.example.com", "ok: 4")
    found = dr_summary(text)
    assert found["backup"] == "bk-4" and found["rto_seconds"] == 12.3
    assert found["verification"] == "ok: 4"
    assert "confirmed by **ana**" in found["dns"]
    assert "restored bk-4" in render_dr(found)


DELIVERY = """\
# Delivery of `kyb-platform` at `0123456789ab` (main)

Image `127.0.0.1:5001/kyb-platform@sha256:abc`

| stage | seconds |
|---|---|
| tests | 1.5 |
| build | 3.0 |

| environment | result | strategy | release |
|---|---|---|---|
| staging | delivered | rolling | done |
| production | not delivered | - | - |"""


def test_a_delivery_report_gives_the_image_ci_and_each_environment() -> None:
    found = delivery_report(DELIVERY)
    assert found["app"] == "kyb-platform"
    assert found["image"] == "127.0.0.1:5001/kyb-platform@sha256:abc"
    assert found["ci_seconds"] == {"tests": "1.5", "build": "3.0"}
    assert [e["result"] for e in found["environments"]] == ["delivered", "not delivered"]
    assert delivery_report("") == {
        "app": None,
        "image": None,
        "ci_seconds": {},
        "environments": [],
    }


def test_a_delivery_row_names_the_environment_block_and_the_duration() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    params = {
        "commit": "0123456789abcdef",
        "branch": "main",
        "environment": {"$ref": {"block_document_slug": "kyb-environment/production"}},
    }
    got = delivery_row(
        "id-1", "brave-fox", "Running", params, start, None, start + timedelta(seconds=65)
    )
    assert got["environment"] == "production" and got["app"] == "kyb-platform"
    assert got["commit"] == "0123456789ab" and got["duration"] == "1m 05s"
    not_started = delivery_row("i", "n", "Scheduled", {"app": "x"}, None, None, start)
    assert not_started["duration"] is None and not_started["environment"] is None


def test_seconds_read_as_a_person_reads_them() -> None:
    assert [human_seconds(s) for s in (None, 42, 185, 3720)] == [None, "42s", "3m 05s", "1h 02m"]
    assert recovery_times("no times here") == {}
