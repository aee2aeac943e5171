"""The HTTPRoute canary router's pure side: which rule, what weight, what patch, when served."""

from __future__ import annotations

import jsonpatch
import pytest

from core.errors import ConfigError
from core.release import route


def _route(*rules: list[dict], generation: int = 1, status: dict | None = None) -> dict:
    return {
        "metadata": {"name": "web", "namespace": "ns", "generation": generation},
        "spec": {"rules": [{"backendRefs": refs} for refs in rules]},
        **({"status": status} if status else {}),
    }


def _ref(name: str, weight: int | None = None, **extra) -> dict:
    return {"name": name, "port": 80, **({"weight": weight} if weight is not None else {}), **extra}


def test_the_weight_is_the_canary_share_of_the_rule_naming_both() -> None:
    found = _route([_ref("other")], [_ref("web", 75), _ref("web-canary", 25)])
    assert route.weighted_rules(found, "web", "web-canary") == [1]
    assert route.canary_weight(found, "web", "web-canary") == 25


def test_refs_without_weights_weigh_one_each_and_zero_total_is_zero() -> None:
    assert route.canary_weight(_route([_ref("web"), _ref("web-canary")]), "web", "web-canary") == 50
    zero = _route([_ref("web", 0), _ref("web-canary", 0)])
    assert route.canary_weight(zero, "web", "web-canary") == 0


@pytest.mark.parametrize(
    "refs",
    [
        [_ref("web", 100)],  # no canary
        [_ref("web", 100), _ref("web-canary", 0, namespace="elsewhere")],  # another namespace
        [_ref("web", 100), _ref("web-canary", 0, kind="ServiceImport", group="x.io")],
    ],
)
def test_a_route_not_naming_both_services_is_refused_with_what_to_fix(refs) -> None:
    with pytest.raises(ConfigError, match="add both to one rule's backendRefs"):
        route.weight_patch(_route(refs), "web", "web-canary", 10)


def test_the_patch_sets_stable_and_canary_in_every_rule_naming_both() -> None:
    found = _route(
        [_ref("web", 100), _ref("web-canary")],
        [_ref("web-canary", 0), _ref("web", 100), _ref("other", 5)],
    )
    patched = jsonpatch.apply_patch(found, route.weight_patch(found, "web", "web-canary", 30))
    weights = [
        [(r["name"], r.get("weight")) for r in rule["backendRefs"]]
        for rule in patched["spec"]["rules"]
    ]
    assert weights == [
        [("web", 70), ("web-canary", 30)],
        [("web-canary", 30), ("web", 70), ("other", 5)],
    ]


def test_the_patch_fails_if_a_rule_moved_meanwhile() -> None:
    found = _route([_ref("web", 100), _ref("web-canary", 0)])
    patch = route.weight_patch(found, "web", "web-canary", 30)
    moved = _route([_ref("web-canary", 0), _ref("web", 100)])
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        jsonpatch.apply_patch(moved, patch)


def test_a_weight_out_of_range_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"0\.\.100"):
        route.weight_patch(_route([_ref("web"), _ref("web-canary")]), "web", "web-canary", 101)


def _parent(generation: int, **status: str) -> dict:
    conditions = [
        {"type": kind, "status": value, "observedGeneration": generation, "reason": "R"}
        for kind, value in status.items()
    ]
    return {"parentRef": {"namespace": "kyb-traefik", "name": "kyb"}, "conditions": conditions}


def test_served_only_once_the_gateway_reports_this_generation() -> None:
    refs = [_ref("web"), _ref("web-canary")]
    assert not route.served(_route(refs, generation=2))[0]
    stale = {"parents": [_parent(1, Accepted="True", ResolvedRefs="True")]}
    assert not route.served(_route(refs, generation=2, status=stale))[0]
    half = {"parents": [_parent(2, Accepted="True")]}
    assert not route.served(_route(refs, generation=2, status=half))[0]
    both = {"parents": [_parent(2, Accepted="True", ResolvedRefs="True")]}
    assert route.served(_route(refs, generation=2, status=both)) == (True, "")


def test_a_refusing_gateway_is_a_config_error() -> None:
    refused = {"parents": [_parent(2, Accepted="True", ResolvedRefs="False")]}
    with pytest.raises(ConfigError, match="ResolvedRefs"):
        route.served(_route([_ref("web")], generation=2, status=refused))
