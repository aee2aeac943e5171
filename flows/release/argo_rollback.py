"""Rollback of an app released with `engine: argo`: the Rollout's template back, promoted in full.

What `kubectl argo rollouts undo` and then `promote --full` do, as the rollback flow's other
strategies do it: the target is decided once and recorded in the app's history before any write
(a retry or re-run carries on with it, never moving further back), the Rollout's pod template is
replaced by the target revision's (its ReplicaSet's, without Argo's hash label), the remaining
steps are skipped (an emergency rollback does not walk the canary again), and it is done when Argo
reports the target's pods stable and Healthy.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from blocks import KubernetesCluster
from core.errors import ConfigError
from core.release.argo_rollout import read_status
from core.release.errors import RollbackFailed
from core.release.history import History, RollbackRecord
from core.release.observed import Track
from tasks import argo
from tasks.release import now_iso, save_history

HASH_LABEL = "rollouts-pod-template-hash"


def _image(rs: dict[str, Any], container: str) -> str:
    containers = rs["spec"]["template"]["spec"]["containers"]
    return next((c["image"] for c in containers if c["name"] == container), containers[0]["image"])


def _hash(rs: dict[str, Any]) -> str:
    return (rs["metadata"].get("labels") or {}).get(HASH_LABEL, "")


def _target(
    sets: list[dict[str, Any]],
    serving: dict[str, Any],
    history: History,
    to_revision: int,
    container: str,
) -> dict[str, Any]:
    if to_revision:
        found = [rs for rs in sets if argo.revision(rs) == to_revision]
        if not found:
            known = ", ".join(str(argo.revision(rs)) for rs in sets)
            raise ConfigError(f"the Rollout has no revision {to_revision}: it keeps {known}")
        return found[0]
    before = history.previous(_image(serving, container))
    older = [rs for rs in sets if _image(rs, container) != _image(serving, container)]
    if before is not None:
        older = [rs for rs in older if _image(rs, container) == before.image] or older
    if not older:
        raise ConfigError(
            "nothing to roll back to: the Rollout keeps no earlier revision with another image"
        )
    return older[-1]


def rollback_rollout(
    cluster: KubernetesCluster,
    namespace: str,
    app: str,
    history: History,
    to_revision: int,
    by: str,
) -> tuple[RollbackRecord, bool, list[dict[str, Any]]]:
    """Return the Rollout `app` to its previous stable version (or `to_revision`).

    Returns the record, whether it was decided by an earlier run (and kept), and the journal.

    Raises:
        ConfigError: no Rollout, or nothing (or no such revision) to go back to.
        RollbackFailed: Argo did not make the target stable in time.
    """
    spec = history.spec
    assert spec is not None
    live = argo.read_rollout(cluster, namespace, app)
    if live is None:
        raise ConfigError(f"no Rollout {namespace}/{app}: nothing to roll back")
    status = read_status(live)
    sets = argo.replica_sets(cluster, namespace, live["metadata"]["uid"])
    serving = next((rs for rs in sets if _hash(rs) == status.stable), None)
    if serving is None:
        raise ConfigError(
            f"Rollout {namespace}/{app} reports no stable ReplicaSet to roll back from"
        )
    kept = history.rollback
    reused = kept is not None and kept.fits(
        history.newest, to_revision, _image(serving, spec.container)
    )
    if reused and kept is not None:
        record = kept
    else:
        target = _target(sets, serving, history, to_revision, spec.container)
        template = copy.deepcopy(target["spec"]["template"])
        template["metadata"]["labels"].pop(HASH_LABEL, None)
        template["metadata"].pop("creationTimestamp", None)
        record = RollbackRecord(
            undoes=history.newest,
            to_revision=to_revision,
            track=Track.STABLE,
            image=_image(target, spec.container),
            revision=argo.revision(target),
            template=template,
            from_track=Track.STABLE,
            from_image=_image(serving, spec.container),
            from_revision=argo.revision(serving),
            decided_at=now_iso(),
            decided_by=by,
        )
        history = history.decided(record)
        save_history(cluster, namespace, app, history)  # before any write
    journal: list[dict[str, Any]] = []
    started = time.monotonic()
    generation = argo.set_template(cluster, namespace, app, dict(record.template or {}))
    journal.append(
        {
            "step": 1,
            "action": "set the Rollout's template to the target's (kubectl argo rollouts undo)",
            "from": record.from_image,
            "to": record.image,
            "seconds": round(time.monotonic() - started, 2),
            "note": f"generation {generation}",
        }
    )
    started = time.monotonic()
    _promote_fully(cluster, namespace, app, generation, spec.deadline_seconds)
    journal.append(
        {
            "step": 2,
            "action": "promote in full, wait until Argo reports it stable and Healthy",
            "from": record.from_image,
            "to": record.image,
            "seconds": round(time.monotonic() - started, 2),
            "note": "",
        }
    )
    history = history.finished(now_iso())
    save_history(cluster, namespace, app, history)
    return record, reused, journal


def _promote_fully(
    cluster: KubernetesCluster, namespace: str, app: str, generation: int, deadline_seconds: int
) -> None:
    """Skip the target's remaining steps once Argo took the template; wait until it is stable."""
    deadline = time.monotonic() + deadline_seconds + 60
    promoted, version = False, None
    while time.monotonic() < deadline:
        live = argo.read_rollout.fn(cluster, namespace, app)
        changes = [live] if live else []
        if version is not None:
            changes = argo.follow(cluster, namespace, app, version)
        for obj in changes:
            version = obj["metadata"].get("resourceVersion")
            status = read_status(obj)
            if status.generation < generation or not status.observed:
                continue
            if status.promoted:
                return
            if status.aborted:
                argo.retry(cluster, namespace, app)
            elif not promoted and status.current != status.stable:
                argo.promote(cluster, namespace, app, full=True)
                promoted = True
    raise RollbackFailed(
        f"Argo Rollouts did not make the target of {namespace}/{app} stable within "
        f"{deadline_seconds + 60}s"
    )
