"""A Gateway API HTTPRoute as a canary's traffic router (pure: reads and patches API JSON).

Argo's gatewayAPI plugin semantics: the HTTPRoute is the user's (hostnames, matches, parentRefs);
the pipeline changes only the weights of the backendRefs that name the stable and the canary
Services: stable 100 - w, canary w, in every rule that names both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.errors import ConfigError

GROUP, VERSION, PLURAL = "gateway.networking.k8s.io", "v1", "httproutes"
DEFAULT_WEIGHT = 1  # Gateway API: a backendRef without a weight weighs 1
NEEDED = ("Accepted", "ResolvedRefs")  # the conditions a parent sets once it serves the route


def _is_service(ref: Mapping[str, Any], namespace: str) -> bool:
    return (
        ref.get("group", "") in ("", "core")
        and ref.get("kind", "Service") == "Service"
        and ref.get("namespace", namespace) == namespace
    )


def weighted_rules(route: Mapping[str, Any], stable: str, canary: str) -> list[int]:
    """Indexes of the rules whose backendRefs name both Services.

    Raises:
        ConfigError: no rule names both (the route cannot split traffic between them).
    """
    meta = route.get("metadata") or {}
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    found = []
    for i, rule in enumerate((route.get("spec") or {}).get("rules") or []):
        names = [r.get("name") for r in rule.get("backendRefs") or [] if _is_service(r, namespace)]
        if stable in names and canary in names:
            found.append(i)
    if not found:
        raise ConfigError(
            f"HTTPRoute {namespace}/{name} has no rule whose backendRefs name both the stable "
            f"Service {stable!r} and the canary Service {canary!r}: add both to one rule's "
            "backendRefs (e.g. weights 100 and 0)",
            namespace=namespace,
        )
    return found


def canary_weight(route: Mapping[str, Any], stable: str, canary: str) -> int:
    """The canary's share in percent on the first rule naming both Services (rounded)."""
    rule = route["spec"]["rules"][weighted_rules(route, stable, canary)[0]]
    namespace = route["metadata"].get("namespace", "")
    weights = {
        r["name"]: r.get("weight", DEFAULT_WEIGHT)
        for r in rule["backendRefs"]
        if _is_service(r, namespace) and r.get("name") in (stable, canary)
    }
    total = weights[stable] + weights[canary]
    return round(100 * weights[canary] / total) if total else 0


def weight_patch(route: Mapping[str, Any], stable: str, canary: str, weight: int) -> list[dict]:
    """A JSON patch: stable 100 - weight, canary weight, guarded by `test` of each ref's name.

    The `test` operations make the apiserver refuse the patch if the route changed under us
    (a rule moved), instead of setting the weight of some other backend.
    """
    if not 0 <= weight <= 100:
        raise ConfigError(f"canary weight {weight} is out of range: use 0..100")
    namespace = route["metadata"].get("namespace", "")
    ops: list[dict] = []
    for i in weighted_rules(route, stable, canary):
        for j, ref in enumerate(route["spec"]["rules"][i]["backendRefs"]):
            if not _is_service(ref, namespace) or ref.get("name") not in (stable, canary):
                continue
            path = f"/spec/rules/{i}/backendRefs/{j}"
            value = weight if ref["name"] == canary else 100 - weight
            ops += [
                {"op": "test", "path": f"{path}/name", "value": ref["name"]},
                {"op": "add", "path": f"{path}/weight", "value": value},
            ]
    return ops


def served(route: Mapping[str, Any]) -> tuple[bool, str]:
    """(True, "") once every parent has Accepted and ResolvedRefs for this generation.

    Raises:
        ConfigError: a parent refused the current generation (condition False), with its reason.
    """
    generation = (route.get("metadata") or {}).get("generation", 0)
    parents = (route.get("status") or {}).get("parents") or []
    if not parents:
        return False, "no Gateway reports on the route yet"
    for parent in parents:
        ref = parent.get("parentRef") or {}
        where = f"{ref.get('namespace', '')}/{ref.get('name', '')}"
        conditions = {c.get("type"): c for c in parent.get("conditions") or []}
        for kind in NEEDED:
            cond = conditions.get(kind)
            if cond is None or cond.get("observedGeneration", 0) < generation:
                return False, f"Gateway {where} has not reported {kind} for generation {generation}"
            if cond.get("status") != "True":
                raise ConfigError(
                    f"Gateway {where} refuses the HTTPRoute ({kind}: {cond.get('reason')}: "
                    f"{cond.get('message')}): fix the route's parentRefs or backendRefs",
                    route=(route.get("metadata") or {}).get("name"),
                )
    return True, ""
