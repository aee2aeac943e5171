"""The deployment checklist: the seed's items as data, the ready verdict, markdown, migrations."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.delivery.checklist import (
    MIGRATIONS,
    SEED,
    TESTS,
    Checklist,
    Item,
    Status,
    human_items,
    judge_migrations,
    machine,
)
from tests.seed import seed_text

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kyb-platform"


def test_every_seed_item_is_machine_or_human_once_per_phase() -> None:
    names = [(phase, name) for phase, _g, name, _k, _h in SEED]
    assert len(names) == len(set(names))
    assert all(kind in ("machine", "human") for *_x, kind, _h in SEED)
    machine_pre = {
        name for phase, _g, name, kind, _h in SEED if (phase, kind) == ("pre", "machine")
    }
    assert machine_pre == {
        "All tests passing",
        "Security scan passed",
        "Configuration validated",
        "Alerts configured",
        "Database migrations ready",
        "Image deployed by digest",
    }
    assert "Stakeholders notified" in {i.name for i in human_items("pre")}
    assert "Rollback plan reviewed" in {i.name for i in human_items("pre")}
    assert "Deployment status communicated" in {i.name for i in human_items("post")}
    assert all(i.status is Status.PENDING and i.kind == "human" for i in human_items("post"))


def test_names_use_the_seeds_wording() -> None:
    text = seed_text()
    ours = {"Image deployed by digest"}  # DESIGN.md's digest rule, not in the seed's lists
    for _phase, group, name, _kind, _how in SEED:
        if name not in ours:
            assert f"✓ {name}" in text, name
            assert f"{group}:" in text, group


@pytest.mark.parametrize(
    ("statuses", "ok"),
    [
        ((Status.PASSED, Status.CONFIRMED, Status.SKIPPED), True),
        ((Status.PASSED, Status.FAILED), False),
        ((Status.PASSED, Status.DECLINED), False),
        ((Status.PASSED, Status.PENDING), False),
        ((), True),
    ],
)
def test_ok_only_when_nothing_failed_declined_or_pending(statuses, ok) -> None:
    checklist = Checklist()
    for n, status in enumerate(statuses):
        checklist.add(Item(name=f"item {n}", kind="human", phase="pre", status=status))
    assert checklist.ok() is ok
    assert [i.status for i in checklist.failures()] == [
        s for s in statuses if s in (Status.FAILED, Status.DECLINED)
    ]


def test_add_replaces_an_item_of_the_same_name_and_phase() -> None:
    checklist = Checklist().add(*human_items("pre"))
    before = len(checklist.items)
    first = checklist.items[0]
    checklist.add(Item(name=first.name, kind="human", phase="pre", status=Status.CONFIRMED))
    assert len(checklist.items) == before
    assert checklist.items[0].status is Status.CONFIRMED
    assert len(checklist.pending("human", "pre")) == before - 1
    assert checklist.pending("human", "post") == []


def test_machine_results_and_one_line_details() -> None:
    assert machine(TESTS, "pre", True, "ok").status is Status.PASSED
    assert machine(TESTS, "pre", False, "bad").status is Status.FAILED
    assert machine(TESTS, "pre", None, "n/a").status is Status.SKIPPED
    assert machine(TESTS, "pre", False, "line one\n  line two").detail == "line one line two"


def test_markdown_groups_by_phase_with_checkboxes_and_why() -> None:
    checklist = Checklist().add(
        Item(
            name="Stakeholders notified",
            kind="human",
            phase="pre",
            status=Status.CONFIRMED,
            who="alice",
            detail="mail sent",
        ),
        machine("Health checks passing", "post", False, "database unhealthy"),
        machine(TESTS, "pre", True, "120 passed"),
    )
    text = checklist.as_markdown("Release of kyb-platform")
    assert text.startswith("# Release of kyb-platform\n")
    assert "**not ready: 1 failed**" in text
    pre, post = text.index("## Pre-deployment"), text.index("## Post-deployment")
    tests_line = text.index("- [x] All tests passing (machine, Code Quality): **passed**: 120")
    notified = text.index(
        "- [x] Stakeholders notified (human, Communication): **confirmed** by alice: mail sent"
    )
    health = text.index(
        "- [ ] Health checks passing (machine, Verification): **failed**: database unhealthy"
    )
    assert pre < tests_line < notified < post < health  # the seed's order within a phase


def test_the_examples_migrations_file_passes() -> None:
    path = EXAMPLE / "deploy" / "migrations.yaml"
    item = judge_migrations(path.read_text(), str(path))
    assert item.name == MIGRATIONS and item.status is Status.PASSED, item.detail
    assert item.detail.startswith("no migrations: ")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (None, "no migrations file: declare the release's schema migrations in m.yaml"),
        ("migrations: [", "not YAML"),
        ("reason: none", "no `migrations:` list"),
        ("migrations: []", "an empty list needs a `reason:`"),
        ("migrations: [{reversible: true}]", "migration #1 has no `id`"),
        ("migrations: [{id: a1}]", "migration a1 needs `reversible: true|false`"),
        ("migrations: [{id: a1, reversible: 'yes'}]", "migration a1 needs `reversible"),
        (
            "migrations: [{id: a1, reversible: false}]",
            "migration a1 is not reversible: set `approved_by: <who>`",
        ),
        ("migrations: [{id: a1, reversible: true}, {id: a1, reversible: true}]", "ids repeat"),
    ],
)
def test_migrations_fail_with_what_to_add(text, why) -> None:
    item = judge_migrations(text, "m.yaml")
    assert item.status is Status.FAILED
    assert why in item.detail


def test_declared_migrations_pass_when_reversible_or_approved() -> None:
    text = (
        "migrations:\n- {id: 001-add-risk, reversible: true}\n"
        "- {id: 002-drop-legacy, reversible: false, approved_by: dba-bob}\n"
    )
    item = judge_migrations(text, "m.yaml")
    assert item.status is Status.PASSED
    assert item.detail == (
        "2 declared: 001-add-risk, 002-drop-legacy, not reversible (approved): 002-drop-legacy"
    )
