"""The pod status a kubelet would report, built from what the runner knows (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime


def now_rfc3339() -> str:
    """The time now as the API writes it (seconds, UTC)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ContainerState:
    """One container instance as the API shows it: waiting, running or terminated."""

    state: str = "waiting"
    reason: str = "ContainerCreating"
    message: str = ""
    container_id: str = ""
    image_id: str = ""
    started_at: str = ""
    finished_at: str = ""
    exit_code: int = 0

    def api(self) -> dict:
        """The `state` (or `lastState`) object of a containerStatus."""
        if self.state == "running":
            return {"running": {"startedAt": self.started_at}}
        if self.state == "terminated":
            body = {
                "exitCode": self.exit_code,
                "reason": self.reason or ("Completed" if self.exit_code == 0 else "Error"),
                "startedAt": self.started_at or None,
                "finishedAt": self.finished_at or None,
                "containerID": self.container_id or None,
            }
            if self.message:
                body["message"] = self.message
            return {"terminated": {k: v for k, v in body.items() if v is not None}}
        waiting = {"reason": self.reason}
        if self.message:
            waiting["message"] = self.message
        return {"waiting": waiting}


@dataclass
class PodView:
    """What the runner reports for one pod."""

    current: ContainerState = field(default_factory=ContainerState)
    last: ContainerState | None = None  # the previous instance, once it terminated
    restarts: int = 0
    ready: bool = False
    ready_since: str = field(default_factory=now_rfc3339)
    phase: str = "Running"
    pod_ip: str = ""


def _condition(kind: str, ready: bool, since: str, names: list[str]) -> dict:
    cond: dict = {"type": kind, "status": "True" if ready else "False", "lastTransitionTime": since}
    # conditions merge by type: a null removes an earlier reason and message once Ready
    cond["reason"] = None if ready else "ContainersNotReady"
    cond["message"] = None if ready else f"containers with unready status: [{' '.join(names)}]"
    return cond


def status_patch(pod: dict, view: PodView) -> dict:
    """A strategic-merge patch of pods/status: phase, IP, Ready conditions, container statuses.

    Only the first container runs: any other is reported waiting (NotRun) and keeps the pod
    unready, so a pod the runner cannot run whole never looks Ready.
    """
    containers = pod["spec"]["containers"]
    first = containers[0]
    running = view.current.state == "running"
    ready = view.ready and running and len(containers) == 1
    statuses = [
        {
            "name": first["name"],
            "image": first["image"],
            "imageID": view.current.image_id,
            "ready": ready,
            "started": running,
            "restartCount": view.restarts,
            "state": view.current.api(),
            "lastState": view.last.api() if view.last else {},
            **({"containerID": view.current.container_id} if view.current.container_id else {}),
        }
    ]
    for other in containers[1:]:
        message = "the pod runner runs a pod's first container only"
        statuses.append(
            {
                "name": other["name"],
                "image": other["image"],
                "imageID": "",
                "ready": False,
                "started": False,
                "restartCount": 0,
                "state": {"waiting": {"reason": "NotRun", "message": message}},
                "lastState": {},
            }
        )
    unready = [s["name"] for s in statuses if not s["ready"]]
    body: dict = {
        "phase": view.phase,
        "conditions": [
            _condition("Ready", ready, view.ready_since, unready),
            _condition("ContainersReady", ready, view.ready_since, unready),
        ],
        "containerStatuses": statuses,
    }
    if view.pod_ip:
        body["podIP"] = view.pod_ip
        body["podIPs"] = [{"ip": view.pod_ip}]
    return {"status": body}


def agrees(pod: dict, patch: dict) -> bool:
    """Whether the pod's status already says what the patch says (phase, IP, readiness, restarts).

    Someone else may have changed it (the node lifecycle controller marks pods unready when a
    node misses heartbeats): the runner then reports again, as a kubelet's status sync does.
    """
    want, have = patch["status"], pod.get("status") or {}
    if have.get("phase") != want["phase"] or have.get("podIP") != want.get("podIP"):
        return False
    conditions = {c["type"]: c.get("status") for c in have.get("conditions") or []}
    if any(conditions.get(c["type"]) != c["status"] for c in want["conditions"]):
        return False
    seen = {s["name"]: s for s in have.get("containerStatuses") or []}
    for status in want["containerStatuses"]:
        got = seen.get(status["name"]) or {}
        if (got.get("ready"), got.get("restartCount")) != (status["ready"], status["restartCount"]):
            return False
        if set(got.get("state") or {}) != set(status["state"]):
            return False
    return True
