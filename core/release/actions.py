"""The actions a planner returns, the release plan's steps, and how a run records what it did."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from typing_extensions import override

from core.release.defaults import HUMAN_PAUSE_TIMEOUT_SECONDS
from core.release.observed import Outcome, RunRecord, Track
from core.release.spec import AnalysisRef, ReleaseSpec


class AnalysisPhase(StrEnum):
    """When an analysis runs, named as in Argo Rollouts."""

    STEP = "step"  # a canary `analysis` step: blocks until its verdict
    BACKGROUND = "background"  # canary `analysis`: runs alongside the steps, does not block
    PRE_PROMOTION = "prePromotion"
    POST_PROMOTION = "postPromotion"
    POST_DEPLOY = "postDeploy"  # rolling (ours, not Argo's): the settled Deployment's new revision
    FIRST_DEPLOY = "firstDeploy"  # ours: a first release, analysed before it is done


@dataclass(frozen=True)
class ReleaseAction:
    """Base of every planner decision; `describe()` is one line for logs and the UI.

    The executor's loop: observe, ask the planner, perform the one action, `record` it, repeat until
    Done or Fail. Writes (ApplyWorkload, Scale, SwitchService, SetCanaryWeight, ScaleDownAfter) are
    idempotent; waits (WaitReady, Pause) block; decisions (CompleteStep, Promote, Abort) and results
    (Pause ended, analysis verdict) only change the run's record.
    """

    terminal = False

    def describe(self) -> str:
        """One human-readable line."""
        raise NotImplementedError


@dataclass(frozen=True)
class ApplyWorkload(ReleaseAction):
    """Create or update `track`'s workload to run `image` at `replicas` (server-side apply)."""

    track: Track
    image: str
    replicas: int

    @override
    def describe(self) -> str:
        return f"apply {self.track}: {self.image} x{self.replicas}"


@dataclass(frozen=True)
class Scale(ReleaseAction):
    """Set `track`'s replica count, keeping its image."""

    track: Track
    replicas: int

    @override
    def describe(self) -> str:
        return f"scale {self.track} to {self.replicas} replicas"


@dataclass(frozen=True)
class SwitchService(ReleaseAction):
    """Point `service` at the pods matching `selector`."""

    service: str
    selector: Mapping[str, str]

    @override
    def describe(self) -> str:
        labels = ",".join(f"{k}={v}" for k, v in sorted(self.selector.items()))
        return f"point Service {self.service} at {labels}"


@dataclass(frozen=True)
class SetCanaryWeight(ReleaseAction):
    """Have the traffic router send `weight` percent of requests to the canary Service."""

    weight: int

    @override
    def describe(self) -> str:
        return f"route {self.weight}% of traffic to the canary"


@dataclass(frozen=True)
class WaitReady(ReleaseAction):
    """Watch `track` until it settles; after `timeout_seconds` it is deadline_exceeded."""

    track: Track
    timeout_seconds: int

    @override
    def describe(self) -> str:
        return f"wait for {self.track} to be ready (up to {self.timeout_seconds}s)"


@dataclass(frozen=True)
class Pause(ReleaseAction):
    """Wait `duration_seconds`, or for a human's answer when `needs_human` (no answer = abort)."""

    key: str
    reason: str
    duration_seconds: int | None = None
    needs_human: bool = False
    timeout_seconds: int | None = None

    @override
    def describe(self) -> str:
        if self.needs_human:
            return f"wait for approval: {self.reason} (no answer in {self.timeout_seconds}s aborts)"
        return f"pause {self.duration_seconds}s: {self.reason}"


def human_pause(key: str, reason: str) -> Pause:
    """A pause that only a human ends, with the default answer timeout."""
    return Pause(key, reason, needs_human=True, timeout_seconds=HUMAN_PAUSE_TIMEOUT_SECONDS)


@dataclass(frozen=True)
class RunAnalysis(ReleaseAction):
    """Run the analysis `ref` and record its verdict under `key` (background: just start it)."""

    key: str
    ref: AnalysisRef
    phase: AnalysisPhase

    @override
    def describe(self) -> str:
        verb = "start" if self.phase is AnalysisPhase.BACKGROUND else "run"
        return f"{verb} {self.phase} analysis {', '.join(self.ref.names)}"


@dataclass(frozen=True)
class CompleteStep(ReleaseAction):
    """Canary step `step` (0-based) of `total` is complete: move on to the next one."""

    step: int
    total: int
    summary: str

    @override
    def describe(self) -> str:
        return f"step {self.step + 1}/{self.total} complete: {self.summary}"


@dataclass(frozen=True)
class Promote(ReleaseAction):
    """Decide to make the new version stable; the planner then returns the writes that do it."""

    summary: str

    @override
    def describe(self) -> str:
        return f"promote: {self.summary}"


@dataclass(frozen=True)
class Abort(ReleaseAction):
    """Decide to roll back; the planner then returns traffic-back and scale-down actions."""

    reason: str

    @override
    def describe(self) -> str:
        return f"abort: {self.reason}"


@dataclass(frozen=True)
class ScaleDownAfter(ReleaseAction):
    """Wait `delay_seconds` (let endpoints converge), then scale `track` to 0."""

    track: Track
    delay_seconds: int

    @override
    def describe(self) -> str:
        return f"scale {self.track} down to 0 after {self.delay_seconds}s"


@dataclass(frozen=True)
class Done(ReleaseAction):
    """The release reached its end state; nothing left to write."""

    summary: str
    terminal = True

    @override
    def describe(self) -> str:
        return f"done: {self.summary}"


@dataclass(frozen=True)
class Fail(ReleaseAction):
    """The release failed; `reason` says why (an aborted release ends here once rolled back)."""

    reason: str
    terminal = True

    @override
    def describe(self) -> str:
        return f"failed: {self.reason}"


@dataclass(frozen=True)
class StartFirstDeploy(ReleaseAction):
    """Decision: nothing of the app runs yet, so this release is a first deploy (recorded)."""

    reason: str

    @override
    def describe(self) -> str:
        return f"first deploy: {self.reason}"


def first_deploy_gate(
    spec: ReleaseSpec, run: RunRecord, selects: Mapping[str, str] | None = None
) -> ReleaseAction | None:
    """The analysis a first deploy still demands, in the strategy's order; None once all passed.

    Every analysis the strategy names runs once as a blocking firstDeploy analysis (Argo skips
    them on a first deploy: there is nothing to compare with, but a version that fails them must
    not stay). Inconclusive asks a human, as anywhere else. `selects`: see analysis_gate.
    """
    if not (run.first_deploy and spec.first_deploy.analysis):
        return None
    for index, (_phase, ref) in enumerate(spec.analysis_refs()):
        key, phase = f"first-deploy-{index}", AnalysisPhase.FIRST_DEPLOY
        gate = analysis_gate(key, ref, phase, run, selects)
        if gate is not None:
            return gate
    return None


def first_deploy_failed(
    spec: ReleaseSpec, view_replicas: int, track: Track, reason: str
) -> ReleaseAction:
    """A failed release with nothing to return to: the new version goes to 0, or stays if told."""
    if spec.first_deploy.on_failure == "scaleToZero":
        if view_replicas:
            return Scale(track, 0)
        return Fail(f"{reason}; nothing to return to, so the new version was scaled to 0")
    return Fail(f"{reason}; nothing to return to: the new version was left running (keep)")


def updated_record(
    run: RunRecord, action: ReleaseAction, *, outcome: Outcome | None = None, approved: bool = True
) -> RunRecord:
    """Return the run's record after the executor performed `action` (pure; `run` is untouched).

    Args:
        run: the record before the action.
        action: what was just performed.
        outcome: a RunAnalysis's verdict; None for a background analysis that only started.
        approved: for a Pause, whether it ended normally (timer, or a human said yes); a "no"
            or an unanswered human pause aborts the release.
    """
    match action:
        case CompleteStep(step=step):
            return replace(run, step_index=max(run.step_index, step + 1))
        case Pause(key=key, reason=reason):
            if approved:
                return replace(run, pauses_done=run.pauses_done | {key})
            return replace(run, aborted=run.aborted or f"not approved: {reason}")
        case RunAnalysis(key=key, phase=phase):
            if outcome is None:
                if phase is not AnalysisPhase.BACKGROUND:
                    raise ValueError(f"analysis {key!r} needs an outcome to record")
                return replace(run, running=run.running | {key})
            analyses = {**run.analyses, key: outcome}
            return replace(run, analyses=analyses, running=run.running - {key})
        case Promote():
            return replace(run, promoted=True)
        case StartFirstDeploy():
            return replace(run, first_deploy=True)
        case Abort(reason=reason):
            return replace(run, aborted=run.aborted or reason)
    return run


def analysis_gate(
    key: str,
    ref: AnalysisRef,
    phase: AnalysisPhase,
    run: RunRecord,
    selects: Mapping[str, str] | None = None,
) -> ReleaseAction | None:
    """The action an analysis still demands, or None once it lets the release go on.

    No verdict yet -> RunAnalysis (None while a background run is going). Failed -> Abort.
    Error -> Abort too: the judge already spent consecutiveErrorLimit on it, as Argo does before
    an AnalysisRun turns Error, which Argo then treats like Failed. Inconclusive -> a human decides
    (Argo pauses the rollout); approval lets the release go on, anything else aborts it.

    `selects`: arguments only the planner knows (the color a blue-green analysis measures),
    given to the analysis unless its ref sets them itself.
    """
    outcome = run.analyses.get(key)
    names = ", ".join(ref.names)
    if outcome is None:
        measured = ref.with_defaults(selects or {})
        return None if key in run.running else RunAnalysis(key, measured, phase)
    if outcome in (Outcome.FAILED, Outcome.ERROR):
        return Abort(f"{phase} analysis {names} ended {outcome}")
    if outcome is Outcome.INCONCLUSIVE and f"{key}:inconclusive" not in run.pauses_done:
        return human_pause(f"{key}:inconclusive", f"{phase} analysis {names} was inconclusive")
    return None


@dataclass(frozen=True)
class PlannedStep:
    """One line of the release plan artifact, with its worst-case duration."""

    kind: str  # apply, setWeight, pause, analysis, promote, switch, scaleDown, wait
    description: str
    seconds: int | None  # worst case; None: unknown (an analysis of unknown length)
    weight: int | None = None
    canary_replicas: int | None = None
    stable_replicas: int | None = None
    needs_human: bool = False


def worst_case_seconds(plan: list[PlannedStep]) -> int:
    """Sum of the known worst-case durations; unknown analysis durations count as 0."""
    return sum(step.seconds or 0 for step in plan)


def analysis_estimate(ref: AnalysisRef | None, known: Mapping[str, int]) -> int | None:
    """Worst-case seconds of `ref` (its templates run side by side); None if any is unknown."""
    if ref is None:
        return 0
    seconds = [known.get(name) for name in ref.names]
    return None if None in seconds else max(s or 0 for s in seconds)
