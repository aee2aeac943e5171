"""engine argo, the part without a cluster: the Rollout written, refusals, status and runs read."""

from __future__ import annotations

import pytest

from core.analysis.argo_runs import read_run
from core.release.argo_rollout import read_status, refuse, rollout_manifest, services
from core.release.errors import SpecError
from core.release.observed import Outcome
from core.release.spec import ReleaseSpec

IMAGE = "127.0.0.1:5001/web@sha256:" + "a" * 64


def _spec(strategy: dict, **kw) -> ReleaseSpec:
    return ReleaseSpec.model_validate(
        {"app": "web", "namespace": "shop", "image": IMAGE, "replicas": 4, "strategy": strategy}
        | {"engine": "argo"}
        | kw
    )


CANARY = {
    "canary": {
        "steps": [
            {"setWeight": 25},
            {"pause": {}},
            {"pause": {"duration": "1m30s"}},
            {"analysis": {"templates": [{"templateName": "success-rate"}]}},
            {"setWeight": 100},
        ],
        "analysis": {"templates": [{"templateName": "error-rate"}], "startingStep": 1},
        "canaryMetadata": {"labels": {"role": "canary"}, "annotations": {"a": "b"}},
    }
}


def test_a_canary_becomes_a_rollout_with_its_steps_the_image_and_the_pipelines_args() -> None:
    doc = rollout_manifest(_spec(CANARY, template={"spec": {"containers": [{"name": "web"}]}}))
    assert (doc["apiVersion"], doc["kind"], doc["metadata"]["name"]) == (
        "argoproj.io/v1alpha1",
        "Rollout",
        "web",
    )
    spec = doc["spec"]
    assert spec["replicas"] == 4 and spec["selector"] == {"matchLabels": {"app": "web"}}
    assert spec["progressDeadlineAbort"] is True
    assert spec["template"]["spec"]["containers"] == [{"name": "web", "image": IMAGE}]
    assert spec["template"]["metadata"]["labels"] == {"app": "web"}
    canary = spec["strategy"]["canary"]
    assert canary["steps"][:3] == [{"setWeight": 25}, {"pause": {}}, {"pause": {"duration": 90}}]
    step_args = {a["name"]: a["value"] for a in canary["steps"][3]["analysis"]["args"]}
    assert step_args == {"service-name": "web", "namespace": "shop", "track": "canary"}
    assert canary["analysis"]["startingStep"] == 1
    assert canary["canaryMetadata"] == {
        "labels": {"role": "canary", "track": "canary"},
        "annotations": {"a": "b"},
    }
    assert canary["stableMetadata"] == {"labels": {"track": "stable"}}


def test_an_analysis_keeps_the_arguments_it_sets_itself() -> None:
    ref = {"templates": [{"templateName": "t"}], "args": [{"name": "track", "value": "x"}]}
    doc = rollout_manifest(_spec({"canary": {"steps": [{"analysis": ref}]}}))
    args = {
        a["name"]: a["value"]
        for a in doc["spec"]["strategy"]["canary"]["steps"][0]["analysis"]["args"]
    }
    assert args["track"] == "x" and args["service-name"] == "web"


def test_a_rolling_update_is_a_canary_without_steps() -> None:
    doc = rollout_manifest(_spec({"rolling": {"maxSurge": "50%", "maxUnavailable": 0}}))
    assert doc["spec"]["strategy"] == {"canary": {"maxSurge": "50%", "maxUnavailable": 0}}


def test_blue_green_names_its_services_and_labels_preview_pods_as_the_canary() -> None:
    spec = _spec(
        {
            "blueGreen": {
                "activeService": "web",
                "previewService": "web-preview",
                "autoPromotionEnabled": False,
                "prePromotionAnalysis": {"templates": [{"templateName": "success-rate"}]},
            }
        }
    )
    bg = rollout_manifest(spec)["spec"]["strategy"]["blueGreen"]
    assert (bg["activeService"], bg["previewService"], bg["autoPromotionEnabled"]) == (
        "web",
        "web-preview",
        False,
    )
    assert bg["previewMetadata"] == {"labels": {"track": "canary"}}
    assert {a["name"]: a["value"] for a in bg["prePromotionAnalysis"]["args"]}["track"] == "canary"
    assert [s["metadata"]["name"] for s in services(spec)] == ["web", "web-preview"]
    assert services(spec)[0]["spec"]["selector"] == {"app": "web"}


@pytest.mark.parametrize(
    ("strategy", "says"),
    [
        (
            {
                "canary": {
                    "steps": [{"setWeight": 50}, {"setCanaryScale": {"replicas": 1}}],
                    "stableService": "web-stable",
                    "canaryService": "web-canary",
                    "trafficRouting": {
                        "plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "web"}}
                    },
                }
            },
            "trafficRouting",
        ),
        ({"rolling": {"analysis": {"templates": [{"templateName": "t"}]}}}, "post-deploy"),
    ],
)
def test_what_argo_cannot_do_here_is_refused_naming_it(strategy: dict, says: str) -> None:
    with pytest.raises(SpecError, match=says) as caught:
        refuse(_spec(strategy))
    assert "nothing was changed" in str(caught.value)


def _rollout(status: dict, generation: int = 3, steps: int = 4) -> dict:
    return {
        "metadata": {"generation": generation},
        "spec": {"strategy": {"canary": {"steps": [{"setWeight": 1}] * steps}}},
        "status": {"observedGeneration": str(generation), **status},
    }


def test_status_a_human_pause_is_seen_and_a_timed_one_is_not_asked() -> None:
    paused = read_status(
        _rollout(
            {
                "phase": "Paused",
                "currentStepIndex": 1,
                "pauseConditions": [{"reason": "CanaryPauseStep"}],
            }
        )
    )
    assert paused.human_pause == "CanaryPauseStep" and not paused.promoted
    assert paused.describe() == "Paused step 1/4"
    running = read_status(_rollout({"phase": "Progressing", "message": "more replicas"}))
    assert running.human_pause is None and running.describe() == "Progressing: more replicas"


def test_status_promoted_only_when_the_controller_saw_this_generation_and_hashes_agree() -> None:
    done = {"phase": "Healthy", "stableRS": "abc", "currentPodHash": "abc", "currentStepIndex": 4}
    assert read_status(_rollout(done)).promoted
    stale = _rollout(done)
    stale["status"]["observedGeneration"] = "2"
    assert not read_status(stale).promoted
    moving = {**done, "currentPodHash": "def"}
    assert not read_status(_rollout(moving)).promoted
    aborted = read_status(_rollout({**done, "abort": True, "phase": "Degraded"}))
    assert aborted.aborted and not aborted.promoted


RUN = {
    "metadata": {"name": "web-abc-2-3"},
    "spec": {
        "args": [
            {"name": "service-name", "value": "web"},
            {"name": "token", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        ],
        "metrics": [
            {
                "name": "success-rate",
                "successCondition": "result[0] >= 0.95",
                "provider": {
                    "prometheus": {"query": 'rate(x{service="{{args.service-name}}"}[1m])'}
                },
            },
            {
                "name": "web",
                "successCondition": "result == true",
                "provider": {"web": {"url": "http://h/?t={{args.token}}"}},
                "dryRun": True,
            },
        ],
    },
    "status": {
        "phase": "Failed",
        "metricResults": [
            {
                "name": "success-rate",
                "phase": "Failed",
                "failed": 1,
                "measurements": [{"value": "[0.5]", "phase": "Failed"}],
            },
            {
                "name": "web",
                "phase": "Successful",
                "dryRun": True,
                "measurements": [{"value": "true"}],
            },
        ],
    },
}


def test_an_analysis_run_reads_as_a_verdict_and_the_pipelines_table_rows() -> None:
    report = read_run(RUN)
    assert report.outcome is Outcome.FAILED and report.name == "web-abc-2-3"
    assert "success-rate: Failed ([0.5])" in report.reason
    first, second = report.rows
    assert first["query"] == 'rate(x{service="web"}[1m])'
    assert (first["values"], first["threshold"], first["outcome"]) == (
        "[0.5]",
        "success: result[0] >= 0.95",
        "Failed",
    )
    assert second["decides"] == "no (dry-run)"
    assert second["query"] == "http://h/?t=***"  # a secret argument is never shown


def test_a_running_analysis_has_no_verdict_yet() -> None:
    running = {**RUN, "status": {"phase": "Running"}}
    assert read_run(running).outcome is None


def test_an_abort_is_over_only_once_the_canary_has_no_pods_or_the_active_service_is_stable() -> (
    None
):
    going = {"phase": "Degraded", "abort": True, "stableRS": "old", "updatedReplicas": 1}
    assert not read_status(_rollout(going)).back_on_stable
    assert read_status(_rollout({**going, "updatedReplicas": 0})).back_on_stable
    blue_green = {
        "metadata": {"generation": 2},
        "spec": {"strategy": {"blueGreen": {"activeService": "web"}}},
        "status": {"observedGeneration": "2", **going, "blueGreen": {"activeSelector": "new"}},
    }
    assert not read_status(blue_green).back_on_stable
    blue_green["status"]["blueGreen"]["activeSelector"] = "old"
    assert read_status(blue_green).back_on_stable
