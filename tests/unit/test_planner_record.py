"""The run's bookkeeping (`record`), analysis gates, and reading a Deployment into a view."""

from __future__ import annotations

import pytest

from core.release.actions import (
    Abort,
    AnalysisPhase,
    CompleteStep,
    Pause,
    Promote,
    RunAnalysis,
    Scale,
    analysis_gate,
    human_pause,
    updated_record,
)
from core.release.observed import Outcome, RunRecord, Track, WorkloadView
from core.release.spec import AnalysisRef

REF = AnalysisRef.model_validate({"templates": [{"templateName": "error-rate"}]})
STEP = RunAnalysis("step-2", REF, AnalysisPhase.STEP)
BACKGROUND = RunAnalysis("background", REF, AnalysisPhase.BACKGROUND)


@pytest.mark.parametrize(
    ("before", "action", "kwargs", "after"),
    [
        (RunRecord(), CompleteStep(2, 7, "x"), {}, RunRecord(step_index=3)),
        (RunRecord(step_index=5), CompleteStep(2, 7, "x"), {}, RunRecord(step_index=5)),
        (
            RunRecord(),
            Pause("step-1", "wait", 30),
            {},
            RunRecord(pauses_done=frozenset({"step-1"})),
        ),
        (
            RunRecord(),
            human_pause("promotion", "go?"),
            {"approved": False},
            RunRecord(aborted="not approved: go?"),
        ),
        (
            RunRecord(),
            STEP,
            {"outcome": Outcome.FAILED},
            RunRecord(analyses={"step-2": Outcome.FAILED}),
        ),
        (RunRecord(), BACKGROUND, {}, RunRecord(running=frozenset({"background"}))),
        (
            RunRecord(running=frozenset({"background"})),
            BACKGROUND,
            {"outcome": Outcome.SUCCESSFUL},
            RunRecord(analyses={"background": Outcome.SUCCESSFUL}),
        ),
        (RunRecord(), Promote("x"), {}, RunRecord(promoted=True)),
        (RunRecord(aborted="first"), Abort("second"), {}, RunRecord(aborted="first")),
        (RunRecord(step_index=1), Scale(Track.CANARY, 2), {}, RunRecord(step_index=1)),
    ],
)
def test_record(before: RunRecord, action, kwargs: dict, after: RunRecord) -> None:
    assert updated_record(before, action, **kwargs) == after


def test_a_blocking_analysis_needs_its_outcome() -> None:
    with pytest.raises(ValueError, match="needs an outcome"):
        updated_record(RunRecord(), STEP)


@pytest.mark.parametrize(
    ("run", "gate"),
    [
        (RunRecord(), STEP),
        (RunRecord(analyses={"step-2": Outcome.SUCCESSFUL}), None),
        (
            RunRecord(analyses={"step-2": Outcome.FAILED}),
            Abort("step analysis error-rate ended Failed"),
        ),
        (
            RunRecord(analyses={"step-2": Outcome.ERROR}),
            Abort("step analysis error-rate ended Error"),
        ),
        (
            RunRecord(analyses={"step-2": Outcome.INCONCLUSIVE}),
            human_pause("step-2:inconclusive", "step analysis error-rate was inconclusive"),
        ),
        (
            RunRecord(
                analyses={"step-2": Outcome.INCONCLUSIVE},
                pauses_done=frozenset({"step-2:inconclusive"}),
            ),
            None,
        ),
    ],
)
def test_analysis_gate(run: RunRecord, gate) -> None:
    assert analysis_gate("step-2", REF, AnalysisPhase.STEP, run) == gate


def test_a_running_background_analysis_does_not_block() -> None:
    running = RunRecord(running=frozenset({"background"}))
    assert analysis_gate("background", REF, AnalysisPhase.BACKGROUND, running) is None


def deployment(generation=3, observed=3, replicas=4, ready=4, total=4, conditions=()) -> dict:
    return {
        "metadata": {
            "name": "kyb-platform-green",
            "generation": generation,
            "annotations": {"deployment.kubernetes.io/revision": "7"},
        },
        "spec": {
            "replicas": replicas,
            "template": {
                "metadata": {"labels": {"app": "kyb-platform", "color": "green"}},
                "spec": {
                    "containers": [
                        {"name": "envoy", "image": "envoy@sha256:" + "1" * 64},
                        {"name": "kyb-platform", "image": "kyb@sha256:" + "2" * 64},
                    ]
                },
            },
        },
        "status": {
            "observedGeneration": observed,
            "replicas": total,
            "updatedReplicas": ready,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "conditions": list(conditions),
        },
    }


STUCK = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}


@pytest.mark.parametrize(
    ("doc", "settled", "stuck"),
    [
        (deployment(), True, False),
        (deployment(ready=2), False, False),
        (deployment(total=5), False, False),  # an old pod still terminating
        (deployment(observed=2), False, False),  # controller has not seen the new spec yet
        (deployment(ready=2, conditions=[STUCK]), False, True),
    ],
)
def test_workload_view_from_deployment(doc: dict, settled: bool, stuck: bool) -> None:
    view = WorkloadView.from_deployment(doc, container="kyb-platform")
    assert (view.name, view.image, view.replicas) == (
        "kyb-platform-green",
        "kyb@sha256:" + "2" * 64,
        4,
    )
    assert (view.color, view.revision) == ("green", "7")
    assert (view.settled, view.deadline_exceeded) == (settled, stuck)
