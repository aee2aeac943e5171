"""Revision history and the rollback target, as `kubectl rollout undo` picks them (pure)."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from core.release.revisions import current_revision, history, rollback_target, undo_patch

DEPLOY = {"metadata": {"uid": "d-1", "annotations": {"deployment.kubernetes.io/revision": "3"}}}


def rs(name: str, rev: str, image: str, owner: str = "d-1") -> dict:
    return {
        "metadata": {
            "name": name,
            "annotations": {"deployment.kubernetes.io/revision": rev},
            "ownerReferences": [{"uid": owner}],
        },
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "web", "pod-template-hash": name[-3:]}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            }
        },
    }


SETS = [
    rs("web-aaa", "3", "v3"),
    rs("web-bbb", "1", "v1"),
    rs("web-ccc", "2", "v2"),
    rs("other-ddd", "7", "x", owner="d-2"),
    rs("web-eee", "", "junk"),
]


def test_history_is_ordered_and_only_owned() -> None:
    revs = history(DEPLOY, SETS)
    assert [(r.number, r.image) for r in revs] == [(1, "v1"), (2, "v2"), (3, "v3")]
    assert current_revision(DEPLOY) == 3
    assert current_revision({"metadata": {}}) == 0


@pytest.mark.parametrize(("to", "image"), [(0, "v2"), (1, "v1"), (2, "v2")])
def test_rollback_target(to: int, image: str) -> None:
    assert rollback_target(history(DEPLOY, SETS), 3, to).image == image


@pytest.mark.parametrize(
    ("current", "to", "message"),
    [
        (3, 3, "already the current one"),
        (3, 9, "revision 9 does not exist: choose one of 1, 2, 3"),
        (1, 0, "no revision before 1"),
        (3, -1, "must be 0"),
    ],
)
def test_bad_rollback_targets_say_what_exists(current: int, to: int, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        rollback_target(history(DEPLOY, SETS), current, to)


def test_undo_patch_replaces_template_without_hash_label() -> None:
    target = history(DEPLOY, SETS)[0]
    [op] = undo_patch(target)
    assert op["op"] == "replace" and op["path"] == "/spec/template"
    assert op["value"]["metadata"]["labels"] == {"app": "web"}
    assert "pod-template-hash" in target.template["metadata"]["labels"]  # input untouched
