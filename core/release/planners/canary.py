"""Canary planner: walk the steps over a stable and a canary workload, as Argo Rollouts does."""

from __future__ import annotations

from core.release.actions import (
    Abort,
    AnalysisPhase,
    ApplyWorkload,
    CompleteStep,
    Done,
    Fail,
    Pause,
    PlannedStep,
    Promote,
    ReleaseAction,
    Scale,
    ScaleDownAfter,
    SetCanaryWeight,
    StartFirstDeploy,
    WaitReady,
    analysis_estimate,
    analysis_gate,
    first_deploy_failed,
    first_deploy_gate,
    human_pause,
)
from core.release.defaults import HUMAN_PAUSE_TIMEOUT_SECONDS
from core.release.observed import ObservedState, Track, WorkloadView
from core.release.spec import CanaryStep, CanaryStrategy, ReleaseSpec, SetCanaryScale

STABLE, CANARY = Track.STABLE, Track.CANARY


def _scaled(value: int | str, total: int, *, round_up: bool) -> int:
    if isinstance(value, int):
        return value
    return -(-total * int(value[:-1]) // 100) if round_up else total * int(value[:-1]) // 100


def fenceposts(max_surge: int | str, max_unavailable: int | str, replicas: int) -> tuple[int, int]:
    """Resolve (surge, unavailable) pods: surge rounds up, unavailable down, both 0 -> (0, 1)."""
    surge = _scaled(max_surge, replicas, round_up=True)
    unavailable = _scaled(max_unavailable, replicas, round_up=False)
    return surge, min(unavailable or (0 if surge else 1), replicas)


def weighted_counts(replicas: int, weight: int, surge: int) -> tuple[int, int]:
    """(canary, stable) replicas that best approximate `weight`% without a traffic router."""
    if replicas == 0:
        return 0, 0
    ceil, floor = -(-replicas * weight // 100), replicas * weight // 100
    zero_ok = weight in (0, 100) or (replicas == 1 and surge == 0)
    options = []
    for total in (replicas, replicas + 1) if surge > 0 else (replicas,):
        tied = (total * weight) % 100 == 50
        if total > replicas or ceil < replicas or zero_ok:
            options.append((ceil, total))
        if not tied and (floor or zero_ok):
            options.append((floor, total))
    # Argo falls back to (0, N) when no candidate qualifies (e.g. N=2, w=75, maxSurge 0)
    canary, total = min(options or [(0, replicas)], key=lambda o: abs(o[0] * 100 / o[1] - weight))
    return canary, total - canary


def next_counts(
    replicas: int,
    want: tuple[int, int],
    surge: int,
    unavailable: int,
    canary: tuple[int, int],
    stable: tuple[int, int],
) -> tuple[int, int]:
    """One move from (spec, available) of canary and stable towards `want` (canary, stable)."""
    (c_spec, c_avail), (s_spec, s_avail), (want_c, want_s) = canary, stable, want
    counts = {CANARY: c_spec, STABLE: s_spec}
    cap = replicas + surge
    room = cap - c_spec - s_spec
    for track, target in ((STABLE, want_s), (CANARY, want_c)):  # stable has precedence
        if counts[track] < target and room > 0:
            grow = min(target - counts[track], room)
            counts[track], room = counts[track] + grow, room - grow
    growing = want_c >= c_spec
    drain, keep = (STABLE, CANARY) if growing else (CANARY, STABLE)
    spec = {CANARY: c_spec, STABLE: s_spec}
    avail = {CANARY: min(c_avail, c_spec), STABLE: min(s_avail, s_spec)}
    floor = replicas - unavailable
    excess = spec[drain] + avail[keep] - floor  # the draining side counts by spec, as in Argo
    if excess <= 0:
        return counts[CANARY], counts[STABLE]
    drain_want = want_s if growing else want_c
    if spec[drain] > drain_want:
        counts[drain] = max(drain_want, spec[drain] - excess)
    over = max(0, counts[keep] + counts[drain] - cap)  # back under the surge cap
    counts[keep] = max(0, counts[keep] - over)
    short = floor - min(avail[drain], counts[drain]) - min(avail[keep], counts[keep])
    counts[keep] += min(max(0, avail[keep] - counts[keep]), max(0, short))
    counts[drain] = max(0, counts[drain] - max(0, counts[keep] + counts[drain] - cap))
    return counts[CANARY], counts[STABLE]


def current_weight(steps: tuple[CanaryStep, ...], index: int) -> int:
    """The weight in force at step `index`: the last setWeight at or before it (0 if none)."""
    weights = [s.set_weight for s in steps[: index + 1] if s.set_weight is not None]
    return weights[-1] if weights else 0


def canary_scale(steps: tuple[CanaryStep, ...], index: int) -> SetCanaryScale | None:
    """The setCanaryScale in force at step `index` (Argo's UseSetCanaryScale).

    The last one at or before the step, unless that one matches the traffic weight again.
    """
    for step in reversed(steps[: index + 1]):
        if step.set_canary_scale is not None:
            scale = step.set_canary_scale
            return None if scale.match_traffic_weight else scale
    return None


def target_counts(
    spec: ReleaseSpec, weight: int, scale: SetCanaryScale | None = None
) -> tuple[int, int]:
    """(canary, stable) replicas the spec asks for at `weight` (and a setCanaryScale in force)."""
    c, n = _canary(spec), spec.replicas
    if c.traffic_routing is not None:
        if scale is not None and scale.replicas is not None:
            return scale.replicas, n
        share = scale.weight if scale is not None and scale.weight is not None else weight
        return -(-n * share // 100), n
    surge, _ = fenceposts(c.max_surge, c.max_unavailable, n)
    return weighted_counts(n, weight, surge)


def _canary(spec: ReleaseSpec) -> CanaryStrategy:
    if spec.strategy.canary is None:
        raise ValueError(f"the canary planner got a {spec.kind} spec")
    return spec.strategy.canary


def _reconcile(
    spec: ReleaseSpec,
    seen: ObservedState,
    weight: int,
    stable: WorkloadView,
    scale: SetCanaryScale | None = None,
) -> ReleaseAction | None:
    """The next write or wait to bring both workloads (and the router) to `weight`, if any."""
    c, n, deadline = _canary(spec), spec.replicas, spec.progress_deadline_seconds
    canary = seen.workload(CANARY)
    want = target_counts(spec, weight, scale)
    now = (canary.replicas, canary.available) if canary else (0, 0)
    if c.traffic_routing is None:
        surge, unavailable = fenceposts(c.max_surge, c.max_unavailable, n)
        move = next_counts(n, want, surge, unavailable, now, (stable.replicas, stable.available))
    else:
        move = want
    if canary is None or canary.image != spec.image:
        if move[0] or (canary and canary.replicas):
            return ApplyWorkload(CANARY, spec.image, move[0])
    elif canary.replicas != move[0]:
        return Scale(CANARY, move[0])
    if stable.replicas != move[1]:
        return Scale(STABLE, move[1])
    for track, view in ((CANARY, canary), (STABLE, stable)):
        if view and view.deadline_exceeded:
            return Abort(f"{view.name} made no progress within {deadline}s")
        if view and not view.settled:
            return WaitReady(track, deadline)
    if move != want:
        return Abort(f"replicas cannot move from {move} towards {want} (canary, stable)")
    if c.traffic_routing is not None and seen.canary_weight != weight:
        return SetCanaryWeight(weight)
    return None


def _finished(spec: ReleaseSpec, seen: ObservedState) -> bool:
    stable, canary = seen.workload(STABLE), seen.workload(CANARY)
    return bool(
        stable
        and stable.runs(spec.image, spec.replicas)
        and (canary is None or (canary.replicas == 0 and canary.settled))
        and seen.canary_weight in (None, 0)
    )


def _promotion(spec: ReleaseSpec, seen: ObservedState) -> ReleaseAction:
    """Stable takes the new image at N, then the canary steps aside."""
    c, n = _canary(spec), spec.replicas
    stable = seen.workload(STABLE)
    if stable is None or stable.image != spec.image or stable.replicas != n:
        return ApplyWorkload(STABLE, spec.image, n)
    if stable.deadline_exceeded:
        return Fail(
            f"{stable.name} made no progress within {spec.progress_deadline_seconds}s "
            "while taking the new image: roll it back"
        )
    if not stable.settled:
        return WaitReady(STABLE, spec.progress_deadline_seconds)
    return _retire_canary(spec, seen, c.scale_down_delay_seconds) or Done(
        f"{spec.app} runs {spec.image} at {n} replicas"
    )


def _first_deploy(spec: ReleaseSpec, seen: ObservedState) -> ReleaseAction:
    """Nothing ran before: the new version comes up as stable, then every analysis gates it."""
    run, n, stable = seen.record, spec.replicas, seen.workload(STABLE)
    if run.aborted:
        return first_deploy_failed(spec, stable.replicas if stable else 0, STABLE, run.aborted)
    if stable is None or stable.image != spec.image or stable.replicas != n:
        return ApplyWorkload(STABLE, spec.image, n)
    if stable.deadline_exceeded:
        return Abort(f"{stable.name} made no progress within {spec.progress_deadline_seconds}s")
    if not stable.settled:
        return WaitReady(STABLE, spec.progress_deadline_seconds)
    return first_deploy_gate(spec, run) or Done(
        f"first deploy: {spec.app} runs {spec.image} at {n} replicas, its analyses passed"
    )


def _rollback(spec: ReleaseSpec, seen: ObservedState) -> ReleaseAction:
    """Traffic back to stable at once, stable capacity restored, then the canary gone.

    Replica-weighted (no router): the canary's traffic is its pods, so they go as soon as the
    stable has been asked for N again, without waiting for the stable's new pods to be Ready
    (as Argo's basic canary does on abort): a version a verdict condemned serves no request
    longer than it must, at the cost of fewer pods until the stable's are Ready. With a router:
    the stable kept N, it is Ready, weight 0, then the canary after abortScaleDownDelaySeconds.
    """
    c, n, reason = _canary(spec), spec.replicas, seen.record.aborted or "aborted"
    stable = seen.workload(STABLE)
    if stable is not None and stable.replicas != n:
        return Scale(STABLE, n)
    if c.traffic_routing is None and (retire := _retire_canary(spec, seen, 0)):
        return retire
    if stable is not None and not stable.settled and not stable.deadline_exceeded:
        return WaitReady(STABLE, spec.progress_deadline_seconds)
    return _retire_canary(spec, seen, c.abort_scale_down_delay_seconds) or Fail(
        f"{reason}; rolled back to the stable version"
    )


def _retire_canary(spec: ReleaseSpec, seen: ObservedState, delay: int) -> ReleaseAction | None:
    """Route no traffic to the canary, then scale it to 0 (after `delay` behind a router)."""
    canary = seen.workload(CANARY)
    if seen.canary_weight not in (None, 0):
        return SetCanaryWeight(0)
    if canary and canary.replicas:
        if _canary(spec).traffic_routing is None:
            return Scale(CANARY, 0)
        return ScaleDownAfter(CANARY, delay)
    return None


def next_action(spec: ReleaseSpec, observed: ObservedState) -> ReleaseAction:
    """Decide the next action of a canary release from the spec and what the cluster shows.

    Replica counts (replica-weighted canary, no traffic router): both workloads sit behind one
    Service, so traffic follows pods. For weight w of N replicas we follow Argo >= 1.2
    (`approximateWeightedCanaryStableReplicaCounts`), not the naive ceil(N*w/100) / N - canary:
    the canary/stable pair sums to N, or to N+1 when maxSurge > 0, whichever comes closest to w;
    for 0 < w < 100 neither side drops to 0 (unless N == 1 and maxSurge == 0); ties go to the first
    candidate (ceil, N). So w=100 means canary N and stable 0 *before* promotion, exactly as Argo's
    basic canary does. With a traffic router, the canary gets ceil(N*w/100) pods, the stable keeps N
    until promotion, and the router moves w% of requests.

    Each move towards those counts honours maxSurge (pods over N) and maxUnavailable (pods under
    N that may be unavailable) as Argo's reconcile does: grow the stable first, then the canary,
    within the surge budget; then shrink only the side that is shrinking, as far as availability
    allows, and pull the total back under the surge cap. Integer arithmetic throughout: Argo's
    floating-point tie test misses a few exact ties (N=25, w=14), which never changes the choice.

    Promotion (after the last step): the stable workload takes the new image at N replicas, then the
    canary goes to 0 (after scaleDownDelaySeconds when traffic-routed). Abort: stable asked for N,
    then for a replica-weighted canary the canary to 0 at once and the stable waited for; with a
    router the stable Ready, weight 0, then the canary after abortScaleDownDelaySeconds; then
    Fail. Abort skips the surge limits.
    """
    c, run = _canary(spec), observed.record
    stable = observed.workload(STABLE)
    if run.first_deploy:
        return _first_deploy(spec, observed)
    if stable is None and not (run.promoted or run.aborted):
        return StartFirstDeploy(f"nothing of {spec.app} runs in {spec.namespace} yet")
    if run.aborted:
        return _rollback(spec, observed)
    if _finished(spec, observed):
        return Done(f"{spec.app} runs {spec.image} at {spec.replicas} replicas")
    if stable is None or stable.image == spec.image or run.promoted:
        return _promotion(spec, observed)  # first release, or stable already on the new image
    index, steps = run.step_index, c.steps
    if c.analysis and index >= (c.analysis.starting_step or 0):
        gate = analysis_gate("background", c.analysis, AnalysisPhase.BACKGROUND, run)
        if gate:
            return gate
    if index >= len(steps):
        return Promote(f"all {len(steps)} steps passed: {spec.image} becomes stable")
    weight, step = current_weight(steps, index), steps[index]
    action = _reconcile(spec, observed, weight, stable, canary_scale(steps, index))
    if action:
        return action
    done = CompleteStep(index, len(steps), f"{step.kind} at canary weight {weight}%")
    key = f"step-{index}"
    if step.pause is not None:
        if key in run.pauses_done:
            return done
        if step.pause.duration is None:
            return human_pause(key, f"canary at {weight}%: go on with {spec.image}?")
        return Pause(key, f"canary at {weight}%", duration_seconds=step.pause.duration)
    if step.analysis is not None:
        return analysis_gate(key, step.analysis, AnalysisPhase.STEP, run) or done
    return done


def plan(spec: ReleaseSpec, analysis_seconds: dict[str, int]) -> list[PlannedStep]:
    """The release plan: one line per canary step, then promotion."""
    c, n, deadline = _canary(spec), spec.replicas, spec.progress_deadline_seconds
    out: list[PlannedStep] = []
    if c.analysis:
        start = c.analysis.starting_step or 0
        names = ", ".join(c.analysis.names)
        out.append(PlannedStep("analysis", f"background analysis {names} from step {start + 1}", 0))
    for i, step in enumerate(c.steps):
        weight = current_weight(c.steps, i)
        canary, stable = target_counts(spec, weight, canary_scale(c.steps, i))
        counts = {"weight": weight, "canary_replicas": canary, "stable_replicas": stable}
        if step.set_weight is not None:
            text = f"setWeight {weight}%: canary {canary}, stable {stable} replicas"
            out.append(PlannedStep("setWeight", text, deadline, **counts))
        elif step.pause is not None and step.pause.duration is None:
            text = f"pause for approval at {weight}% (aborts after {HUMAN_PAUSE_TIMEOUT_SECONDS}s)"
            out.append(
                PlannedStep("pause", text, HUMAN_PAUSE_TIMEOUT_SECONDS, needs_human=True, **counts)
            )
        elif step.pause is not None:
            text = f"pause {step.pause.duration}s at {weight}%"
            out.append(PlannedStep("pause", text, step.pause.duration, **counts))
        elif step.set_canary_scale is not None:
            text = f"setCanaryScale: canary {canary} replicas at {weight}% of traffic"
            out.append(PlannedStep("setCanaryScale", text, deadline, **counts))
        elif step.analysis is not None:
            seconds = analysis_estimate(step.analysis, analysis_seconds)
            text = f"analysis {', '.join(step.analysis.names)} at {weight}%"
            out.append(PlannedStep("analysis", text, seconds, **counts))
    delay = c.scale_down_delay_seconds if c.traffic_routing else 0
    text = f"promote: stable runs {spec.image} at {n} replicas, canary to 0"
    out.append(PlannedStep("promote", text, deadline + delay, 100, 0, n))
    return out
