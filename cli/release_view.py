"""What `kyb release get` shows, built from plain data and rendered as text (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cli.output import table

WORKLOAD_COLUMNS = (
    "track",
    "name",
    "image",
    "desired",
    "ready",
    "updated",
    "available",
    "revision",
)
POD_COLUMNS = ("workload", "name", "ready", "status", "restarts", "image")


def owner_workload(pod: Mapping[str, Any], workloads: Sequence[str]) -> str | None:
    """The Deployment (of `workloads`) a pod belongs to: its ReplicaSet is `<name>-<hash>`."""
    meta = pod.get("metadata") or {}
    pod_hash = (meta.get("labels") or {}).get("pod-template-hash")
    owners = [
        o.get("name") for o in meta.get("ownerReferences") or [] if o.get("kind") == "ReplicaSet"
    ]
    return next((w for w in workloads if pod_hash and f"{w}-{pod_hash}" in owners), None)


def pod_row(pod: Mapping[str, Any], workload: str) -> dict[str, Any]:
    """One pod: its readiness (ready containers/all), status, restarts and first image."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    images = [c.get("image") for c in (pod.get("spec") or {}).get("containers") or []]
    ready = sum(1 for c in containers if c.get("ready"))
    phase = "Terminating" if meta.get("deletionTimestamp") else status.get("phase", "Unknown")
    return {
        "workload": workload,
        "name": meta.get("name"),
        "ready": f"{ready}/{len(containers) or len(images)}",
        "status": phase,
        "restarts": sum(int(c.get("restartCount") or 0) for c in containers),
        "image": images[0] if images else None,
    }


def canary_weight(kind: str, workloads: Sequence[Mapping[str, Any]], route: int | None) -> dict:
    """The canary's share of traffic: the route's weight, else replica-weighted (canary only)."""
    if route is not None:
        return {"weight": route, "source": "route"}
    if kind != "canary":
        return {"weight": None, "source": None}
    by_track = {w["track"]: w for w in workloads}
    canary = (by_track.get("canary") or {}).get("ready", 0)
    total = canary + (by_track.get("stable") or {}).get("ready", 0)
    return {"weight": round(100 * canary / total) if total else 0, "source": "ready replicas"}


def current_step(record: Mapping[str, Any] | None, steps_total: int | None) -> str | None:
    """Where an unfinished release is: canary step i/n, promoted, aborted; None when none runs."""
    if record is None:
        return None
    if record.get("aborted"):
        return f"aborted: {record['aborted']}"
    if record.get("promoted"):
        return "promoted"
    done = int(record.get("step_index") or 0)
    return f"step {done + 1}/{steps_total}" if steps_total else f"step {done + 1}"


def build(
    app: str,
    namespace: str,
    cluster: str,
    snap: Mapping[str, Any] | None,
    run: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The view of one app: workloads, weight, step, pods and its latest release run."""
    snap = snap or {}
    workloads = [
        {
            "track": w["track"],
            "name": w["name"],
            "image": w["image"],
            "desired": w["replicas"],
            "ready": w["ready"],
            "updated": w["updated"],
            "available": w["available"],
            "revision": w.get("revision"),
        }
        for w in snap.get("workloads") or []
    ]
    names = [w["name"] for w in workloads]
    pods = [
        pod_row(p, owner)
        for p in snap.get("pods") or []
        if (owner := owner_workload(p, names)) is not None
    ]
    kind = snap.get("kind") or "unknown"
    record = snap.get("record")
    return {
        "app": app,
        "namespace": namespace,
        "cluster": cluster,
        "strategy": kind,
        "workloads": workloads,
        "services": snap.get("services") or {},
        "canary": canary_weight(kind, workloads, snap.get("route_weight")),
        "step": current_step(record, snap.get("steps_total")),
        "record": record,
        "pods": sorted(pods, key=lambda p: (p["workload"], p["name"] or "")),
        "run": dict(run) if run else None,
    }


def render(view: Mapping[str, Any]) -> str:
    """The view as a person reads it, in the spirit of `kubectl argo rollouts get rollout`."""
    canary = view["canary"]
    lines = [
        f"Name:       {view['app']}",
        f"Namespace:  {view['namespace']} (cluster {view['cluster']})",
        f"Strategy:   {view['strategy']}",
    ]
    if canary["weight"] is not None:
        lines.append(f"Canary:     {canary['weight']}% ({canary['source']})")
    lines.append(f"Step:       {view['step'] or 'no release in progress'}")
    for name, sel in sorted(view["services"].items()):
        lines.append(
            f"Service:    {name} -> {', '.join(f'{k}={v}' for k, v in sorted(sel.items()))}"
        )
    run = view.get("run")
    if run:
        lines.append(f"Last run:   {run['name']} {run['state']} ({run['id']})")
        if run.get("paused"):
            lines.append(
                "            waiting for a person: kyb release promote|abort "
                f"{view['app']} -n {view['namespace']} --reason ..."
            )
        if run.get("progress"):
            lines.append(f"Progress:   {run['progress']}")
        result = run.get("result") or {}
        for v in result.get("verdicts") or []:
            lines.append(f"Analysis:   {v['key']}: {v['outcome']} ({v['reason']})")
        for d in result.get("decisions") or []:
            lines.append(f"Decision:   {d['choice']} by {d['decided_by']}: {d['reason']}")
    analyses = (view.get("record") or {}).get("analyses") or {}
    for key, outcome in sorted(analyses.items()):
        lines.append(f"Analysis:   {key}: {outcome} (this release, so far)")
    lines += ["", table(view["workloads"], WORKLOAD_COLUMNS, empty="no workloads"), ""]
    lines.append(table(view["pods"], POD_COLUMNS, empty="no pods"))
    return "\n".join(lines)
