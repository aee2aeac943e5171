"""The message `notify-run` sends about an ended run, as the API describes that run."""

from __future__ import annotations

from types import SimpleNamespace

from prefect.states import Completed, Crashed, Failed

from flows.notify import describe

IMAGE = "127.0.0.1:5001/web@sha256:" + "a" * 64


def _run(**parameters: object) -> SimpleNamespace:
    return SimpleNamespace(id="r1", name="fancy-zebra", parameters=parameters)


def test_a_release_into_an_environment_names_it() -> None:
    env = {"$ref": {"block_document_slug": "kyb-environment/staging"}}
    run = _run(environment=env, app="web", image=IMAGE)
    event, title, body = describe("release", run, Failed(message="ReleaseFailed: 12% > 5%"))
    assert event == "release-rolled-back"
    assert (
        title == "release of web in environment staging: failed and was rolled back automatically"
    )
    assert f"image: {IMAGE}" in body and "reason: ReleaseFailed: 12% > 5%" in body


def test_a_crash_and_a_completed_rollback() -> None:
    run = _run(app="web", namespace="kyb-production")
    assert describe("release", run, Crashed(message="killed"))[:2] == (
        "release-crashed",
        "release of web in kyb-production: crashed",
    )
    event, title, body = describe("rollback", run, Completed())
    assert (event, title) == ("rolled-back", "rollback of web in kyb-production: rolled back")
    assert "reason:" not in body


def test_a_failed_backup_names_its_namespaces_and_velero_s_reason() -> None:
    run = _run(namespaces=["kyb-staging"])
    event, title, body = describe("backup", run, Failed(message="BackupFailed: PartiallyFailed"))
    assert (event, title) == ("backup-failed", "backup of kyb-staging: failed")
    assert "reason: BackupFailed: PartiallyFailed" in body
    assert body.splitlines()[-1].startswith("flow run: fancy-zebra")  # a link when a UI is known


def test_a_release_the_reconciler_ended_says_what_it_did() -> None:
    run = _run(app="web", namespace="kyb-production", image=IMAGE)
    why = "its run ended Crashed with the release unfinished: resumed: run x scheduled again"
    event, title, body = describe("release", run, Crashed(), "kyb.release.reconciled", why)
    assert event == "release-reconciled"
    assert title == "release of web in kyb-production: its run died half-way; reconciled"
    assert f"reason: {why}" in body
