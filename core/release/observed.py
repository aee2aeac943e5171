"""What the cluster and the run show now: typed, frozen snapshots the planners read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from core.release.defaults import COLOR_LABEL
from core.release.status import RolloutState, rollout_state

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"


class Outcome(StrEnum):
    """An analysis verdict. Missing data is Inconclusive, never Successful (DESIGN.md, 4)."""

    SUCCESSFUL = "Successful"
    FAILED = "Failed"
    ERROR = "Error"
    INCONCLUSIVE = "Inconclusive"


class Track(StrEnum):
    """Which workload: stable/canary for rolling and canary releases, blue/green for blue-green."""

    STABLE = "stable"
    CANARY = "canary"
    BLUE = "blue"
    GREEN = "green"


@dataclass(frozen=True)
class WorkloadView:
    """One workload (a Deployment) as the cluster shows it."""

    name: str
    image: str | None
    replicas: int  # spec.replicas: what was asked for
    updated: int = 0  # status.updatedReplicas: pods on the current pod template
    ready: int = 0  # status.readyReplicas
    available: int = 0  # status.availableReplicas
    total: int | None = None  # status.replicas, old pods included; None: same as `replicas`
    revision: str | None = None
    pod_template_hash: str | None = None
    color: str | None = None
    observed: bool = True  # status.observedGeneration caught up with metadata.generation
    deadline_exceeded: bool = False  # condition Progressing=False, ProgressDeadlineExceeded

    @property
    def settled(self) -> bool:
        """Every asked-for pod is updated, ready and available, and no old pod is left."""
        total = self.replicas if self.total is None else self.total
        return (
            self.observed
            and total == self.replicas
            and min(self.updated, self.ready, self.available) >= self.replicas
        )

    def runs(self, image: str, replicas: int) -> bool:
        """True if this workload runs `image` at exactly `replicas`, all settled."""
        return self.image == image and self.replicas == replicas and self.settled

    @classmethod
    def from_deployment(cls, deployment: Mapping[str, Any], container: str) -> WorkloadView:
        """Read a Deployment's API JSON (camelCase), taking the image of `container`."""
        meta, spec, status = (deployment.get(k) or {} for k in ("metadata", "spec", "status"))
        template = spec.get("template") or {}
        pod = template.get("spec") or {}
        images = {c.get("name"): c.get("image") for c in pod.get("containers") or []}
        labels = (template.get("metadata") or {}).get("labels") or {}
        state, _ = rollout_state(deployment)
        return cls(
            name=meta.get("name", ""),
            image=images.get(container),
            replicas=spec.get("replicas", 1),
            updated=status.get("updatedReplicas", 0),
            ready=status.get("readyReplicas", 0),
            available=status.get("availableReplicas", 0),
            total=status.get("replicas", 0),
            revision=(meta.get("annotations") or {}).get(REVISION_ANNOTATION),
            pod_template_hash=labels.get("pod-template-hash"),
            color=labels.get(COLOR_LABEL),
            observed=status.get("observedGeneration", 0) >= meta.get("generation", 0),
            deadline_exceeded=state is RolloutState.DEADLINE_EXCEEDED,
        )


@dataclass(frozen=True)
class RunRecord:
    """What this release run has done so far; the executor updates it with `actions.record`."""

    step_index: int = 0  # canary: index of the current step (len(steps) = all steps done)
    pauses_done: frozenset[str] = frozenset()  # keys of pauses that ended (timer or approval)
    analyses: Mapping[str, Outcome] = field(default_factory=dict)  # key -> final verdict
    running: frozenset[str] = frozenset()  # background analyses started, no verdict yet
    promoted: bool = False
    aborted: str | None = None  # why the release aborted, once it has
    first_deploy: bool = False  # nothing of the app ran when this release started


@dataclass(frozen=True)
class ObservedState:
    """A snapshot the planner decides on: cluster facts plus the run's record.

    A planner is stateless, so everything it decides on is here: the workloads of each track, the
    selectors of the Services, the router's canary weight, and the run's own record (current canary
    step, pauses passed, analysis verdicts, promote/abort decisions). Argo keeps that record in a
    Rollout's status; the executor keeps it in the flow run and, to survive a crash, on the
    workload.
    """

    workloads: Mapping[Track, WorkloadView] = field(default_factory=dict)
    services: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # name -> selector
    canary_weight: int | None = None  # traffic router's canary weight; None: no router/unknown
    record: RunRecord = field(default_factory=RunRecord)

    def workload(self, track: Track) -> WorkloadView | None:
        """The workload of `track`, or None if it does not exist."""
        return self.workloads.get(track)

    def replicas(self, track: Track) -> int:
        """spec.replicas of `track`'s workload; 0 if it does not exist."""
        view = self.workloads.get(track)
        return view.replicas if view else 0

    def selector(self, service: str | None) -> Mapping[str, str] | None:
        """The selector of `service`, or None if there is no such Service."""
        return self.services.get(service) if service else None
