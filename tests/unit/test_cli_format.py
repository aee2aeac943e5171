"""The `kyb` command line's pure parts: tables, run matching, result reading, the release view."""

from __future__ import annotations

import pytest

from cli.matching import environment_name, read_result, target_of
from cli.output import ExitCode, table
from cli.release_view import build, canary_weight, current_step, owner_workload, pod_row, render

NAMESPACES = {"staging": "kyb-staging", "id:42": "kyb-production"}


def test_exit_codes_are_the_documented_ones() -> None:
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4]


def test_table_aligns_columns_and_shows_nothing_as_a_dash() -> None:
    rows = [{"name": "staging", "approval": False}, {"name": "production", "approval": None}]
    assert table(rows, ["name", "approval"]).splitlines() == [
        "NAME        APPROVAL",
        "staging     no",
        "production  -",
    ]
    assert table([], ["name"], empty="none saved") == "none saved"


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("staging", "staging"),
        ({"$ref": {"block_document_slug": "kyb-environment/staging"}}, "staging"),
        ({"$ref": {"block_document_id": "42"}}, "id:42"),
        ({"name": "dev", "namespace": "kyb-dev"}, "dev"),
        (None, None),
        ("", None),
    ],
)
def test_environment_name_reads_every_form_a_run_parameter_takes(value, name) -> None:
    assert environment_name(value) == name


@pytest.mark.parametrize(
    ("parameters", "target"),
    [
        ({"spec": {"app": "web", "namespace": "t-1"}}, ("web", "t-1")),
        ({"environment": "staging", "app": "kyb-platform"}, ("kyb-platform", "kyb-staging")),
        (
            {"environment": {"$ref": {"block_document_id": "42"}}, "app": "kyb-platform"},
            ("kyb-platform", "kyb-production"),
        ),
        (
            {"rollout": "kind: Rollout\nmetadata: {name: web, namespace: t-2}\n", "image": "x"},
            ("web", "t-2"),
        ),
        ({"rollout": "metadata: {name: web}\n", "environment": "staging"}, ("web", "kyb-staging")),
        ({"rollout": ": not yaml: ["}, (None, None)),
        ({}, (None, None)),
    ],
)
def test_target_of_finds_app_and_namespace_of_a_release_run(parameters, target) -> None:
    assert target_of(parameters, NAMESPACES.get) == target


RESULT = """\
# Release of `web` to `t-1`: FAILED

not approved: aborted at step 2

| # | action | seconds | note |
|---|---|---|---|
| 1 | apply canary | 0.1 | |

## Analysis verdicts

- step-2: **Successful**: 0 errors (report `a-b`)

## Human decisions

- abort by bo: latency up
- promote-full by ana lee: """


def test_read_result_takes_outcome_verdicts_and_decisions() -> None:
    assert read_result(RESULT) == {
        "outcome": "failed",
        "summary": "not approved: aborted at step 2",
        "verdicts": [
            {"key": "step-2", "outcome": "Successful", "reason": "0 errors (report `a-b`)"}
        ],
        "decisions": [
            {"choice": "abort", "decided_by": "bo", "reason": "latency up"},
            {"choice": "promote-full", "decided_by": "ana lee", "reason": ""},
        ],
    }


def _pod(name: str, rs: str, pod_hash: str, ready: bool, deleting: bool = False) -> dict:
    meta = {
        "name": name,
        "labels": {"pod-template-hash": pod_hash},
        "ownerReferences": [{"kind": "ReplicaSet", "name": rs}],
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-12-05T00:00:00Z"
    return {
        "metadata": meta,
        "spec": {"containers": [{"name": "web", "image": "img:1"}]},
        "status": {"phase": "Running", "containerStatuses": [{"ready": ready, "restartCount": 2}]},
    }


def test_a_pod_belongs_to_the_deployment_of_its_replica_set() -> None:
    names = ["web", "web-canary"]
    assert owner_workload(_pod("p", "web-canary-abc", "abc", True), names) == "web-canary"
    assert owner_workload(_pod("p", "web-abc", "abc", True), names) == "web"
    assert owner_workload(_pod("p", "webber-abc", "abc", True), names) is None
    row = pod_row(_pod("p", "web-abc", "abc", False, deleting=True), "web")
    assert row == {
        "workload": "web",
        "name": "p",
        "ready": "0/1",
        "status": "Terminating",
        "restarts": 2,
        "image": "img:1",
    }


def test_canary_weight_is_the_routes_else_replica_weighted() -> None:
    workloads = [{"track": "stable", "ready": 3}, {"track": "canary", "ready": 1}]
    assert canary_weight("canary", workloads, 30) == {"weight": 30, "source": "route"}
    assert canary_weight("canary", workloads, None) == {"weight": 25, "source": "ready replicas"}
    assert canary_weight("rolling", workloads, None) == {"weight": None, "source": None}


def test_current_step_says_where_an_unfinished_release_is() -> None:
    assert current_step(None, 5) is None
    assert current_step({"step_index": 1}, 5) == "step 2/5"
    assert current_step({"step_index": 0, "promoted": True}, 5) == "promoted"
    assert current_step({"step_index": 0, "aborted": "no"}, None) == "aborted: no"


def test_build_and_render_show_workloads_pods_and_a_paused_run() -> None:
    snap = {
        "kind": "canary",
        "workloads": [
            {
                "track": "stable",
                "name": "web",
                "image": "img:1",
                "replicas": 2,
                "ready": 2,
                "updated": 2,
                "available": 2,
                "revision": "3",
            }
        ],
        "services": {"web": {"app": "web"}},
        "route_weight": None,
        "steps_total": 2,
        "record": {"step_index": 1, "analyses": {"step-1": "Successful"}},
        "pods": [_pod("web-abc-1", "web-abc", "abc", True), _pod("x", "other-abc", "abc", True)],
    }
    run = {"id": "r1", "name": "quiet-fox", "state": "Paused", "paused": True, "result": None}
    view = build("web", "t-1", "local", snap, run)
    assert [p["name"] for p in view["pods"]] == ["web-abc-1"]
    assert view["step"] == "step 2/2"
    text = render(view)
    assert "Canary:     0% (ready replicas)" in text
    assert "quiet-fox Paused" in text and "waiting for a person" in text
    assert "step-1: Successful" in text
    assert "web-abc-1" in text and "1/1" in text


def test_backup_row_reads_phase_items_and_times() -> None:
    from cli.backup import backup_row

    row = backup_row(
        {
            "metadata": {"name": "b1"},
            "spec": {"includedNamespaces": ["kyb-staging", "kyb-production"]},
            "status": {
                "phase": "Completed",
                "progress": {"itemsBackedUp": 16, "totalItems": 16},
                "startTimestamp": "2026-12-05T09:43:30Z",
                "expiration": "2027-01-04T09:43:30Z",
            },
        }
    )
    assert row == {
        "name": "b1",
        "phase": "Completed",
        "items": "16/16",
        "namespaces": "kyb-staging,kyb-production",
        "started": "2026-12-05T09:43:30Z",
        "expires": "2027-01-04T09:43:30Z",
        "errors": 0,
        "warnings": 0,
    }
    assert backup_row({"metadata": {"name": "new"}})["phase"] == "New"


def test_environment_row_names_blocks_never_their_secrets() -> None:
    from types import SimpleNamespace

    from cli.envs import environment_row

    doc = SimpleNamespace(
        name="production",
        data={
            "namespace": "kyb-production",
            "strategy": {"blueGreen": {"activeService": "{app}"}},
            "approval_required": True,
            "cluster": {"kubeconfig": "********"},
        },
        block_document_references={"cluster": {"block_document": {"name": "production"}}},
    )
    assert environment_row(doc) == {
        "name": "production",
        "namespace": "kyb-production",
        "cluster": "production",
        "strategy": "blueGreen",
        "engine": "pipeline",
        "approval": True,
    }
