"""`engine: argo` end to end: the platform's Argo Rollouts controller releases, the flow follows.

Each test releases app `web` in a fresh namespace through the real release path (perform_release
inside a flow run on the platform's Prefect server), with analyses Argo's controller measures
itself against the platform's Prometheus. What is checked is what Argo reports: the Rollout's
status (phase, pauseConditions, stableRS, abort), its ReplicaSets, the active Service's selector,
the AnalysisRuns, and `kubectl argo rollouts get rollout`.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from kubernetes import client
from prefect import flow
from prefect.artifacts import Artifact

from blocks import KubernetesCluster, PrometheusServer
from core.analysis.templates import AnalysisTemplate
from core.release.errors import SpecError
from core.release.spec import ReleaseSpec
from flows.environments import runner_for
from flows.release.executor import ReleaseResult
from flows.release.flow import perform_release
from sandbox.procs import run
from tasks import kube
from tests.integration.release_helpers import V1, V2, resume_when_paused

FLOW = "argo-engine-under-test"


def _template(name: str, query: str) -> AnalysisTemplate:
    return AnalysisTemplate.model_validate(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "AnalysisTemplate",
            "metadata": {"name": name},
            "spec": {
                "metrics": [
                    {
                        "name": name,
                        "interval": "1s",
                        "count": 2,
                        "successCondition": "result[0] >= 0.95",
                        "provider": {"prometheus": {"query": query}},
                    }
                ]
            },
        }
    )


TEMPLATES = [_template("healthy", "vector(1)"), _template("erroring", "vector(0.5)")]


@flow(name=FLOW)
def argo_release(spec: ReleaseSpec) -> ReleaseResult:
    """The real release path; analyses are measured by the controller on the local Prometheus."""
    runner = runner_for(PrometheusServer.load("local"), TEMPLATES, False)
    return perform_release(spec, KubernetesCluster.load("local"), runner)


def _spec(ns: str, image: str, strategy: dict, **kw: Any) -> ReleaseSpec:
    body = {"app": "web", "namespace": ns, "image": image, "replicas": 4, "strategy": strategy}
    return ReleaseSpec.model_validate({**body, "engine": "argo", **kw})


def _rollout(ns: str) -> dict[str, Any]:
    api = kube.api_for(KubernetesCluster.load("local"))
    return client.CustomObjectsApi(api).get_namespaced_custom_object(
        "argoproj.io", "v1alpha1", ns, "rollouts", "web"
    )


def _replica_sets(ns: str) -> dict[str, tuple[str, int, int]]:
    """pod-template hash -> (image, spec.replicas, ready) of each ReplicaSet of the Rollout."""
    api = client.AppsV1Api(kube.api_for(KubernetesCluster.load("local")))
    return {
        rs.metadata.labels["rollouts-pod-template-hash"]: (
            rs.spec.template.spec.containers[0].image,
            rs.spec.replicas,
            rs.status.ready_replicas or 0,
        )
        for rs in api.list_namespaced_replica_set(ns).items
    }


def _answer_pauses(answers: list[dict], seen: list[dict], ns: str) -> threading.Thread:
    """As a person at the Prefect UI: at each pause, note the Rollout as it is, then answer."""

    def look() -> None:
        seen.append({"rollout": _rollout(ns), "replica_sets": _replica_sets(ns)})

    return resume_when_paused(answers, timeout=180, flow_name=FLOW, before=look)


CANARY = {
    "canary": {
        "steps": [
            {"setWeight": 50},
            {"pause": {}},
            {"analysis": {"templates": [{"templateName": "healthy"}]}},
            {"setWeight": 100},
        ]
    }
}


def _canary_with(template: str) -> dict:
    steps = [dict(s) for s in CANARY["canary"]["steps"]]
    steps[2] = {"analysis": {"templates": [{"templateName": template}]}}
    return {"canary": {"steps": steps}}


def test_a_canary_pauses_for_a_person_then_argo_promotes_it(argo_rollouts, namespace: str) -> None:
    first = argo_release(_spec(namespace, V1, CANARY))
    assert first.ok and first.first_deploy, first.summary
    seen: list[dict] = []
    alice = {"choice": "promote", "decided_by": "alice", "reason": "canary looks fine"}
    answering = _answer_pauses([alice], seen, namespace)
    result = argo_release(_spec(namespace, V2, CANARY))
    answering.join(timeout=5)
    assert result.ok, result.summary
    # at the pause, as Argo reported it: half the pods on the new version, waiting for a person
    (at_pause,) = seen
    status = at_pause["rollout"]["status"]
    assert status["phase"] == "Paused" and status["currentStepIndex"] == 1
    assert [c["reason"] for c in status["pauseConditions"]] == ["CanaryPauseStep"]
    by_image = {img: n for img, n, _ in at_pause["replica_sets"].values()}
    assert by_image == {V1: 2, V2: 2}
    # afterwards: the new version is stable, every pod on it, the step list done
    status = _rollout(namespace)["status"]
    assert status["phase"] == "Healthy" and status["currentStepIndex"] == 4
    assert status["stableRS"] == status["currentPodHash"]
    assert _replica_sets(namespace)[status["stableRS"]] == (V2, 4, 4)
    assert [(d.choice, d.decided_by) for d in result.decisions] == [("promote", "alice")]
    ((name, verdict),) = result.verdicts.items()
    assert verdict.outcome == "Successful" and name.startswith("web-")
    table = Artifact.get(verdict.report)
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert rows[0]["metric"] == "healthy" and rows[0]["outcome"] == "Successful"
    plugin = run(
        [str(argo_rollouts.plugin), "get", "rollout", "web", "-n", namespace, "--no-color"],
        "test",
        env={"KUBECONFIG": str(argo_rollouts.cluster.kubeconfig)},
    )
    assert "Healthy" in plugin and V2 in plugin and "stable" in plugin


def test_a_failed_analysis_makes_argo_put_everything_back_on_stable(
    argo_rollouts, namespace: str
) -> None:
    assert argo_release(_spec(namespace, V1, CANARY)).ok
    promote = {"choice": "promote", "decided_by": "bob", "reason": "go on"}
    answering = _answer_pauses([promote], [], namespace)
    result = argo_release(_spec(namespace, V2, _canary_with("erroring")))
    answering.join(timeout=5)
    assert not result.ok
    assert "aborted" in result.summary and 'Metric "erroring" assessed Failed' in result.summary
    status = _rollout(namespace)["status"]
    assert status["abort"] is True and status["phase"] == "Degraded"
    replica_sets = _replica_sets(namespace)
    assert replica_sets[status["stableRS"]] == (V1, 4, 4)
    assert {img: n for img, n, _ in replica_sets.values()} == {V1: 4, V2: 0}
    (verdict,) = result.verdicts.values()
    assert verdict.outcome == "Failed" and "erroring" in verdict.reason


BLUE_GREEN = {
    "blueGreen": {
        "activeService": "web",
        "previewService": "web-preview",
        "autoPromotionEnabled": False,
        "scaleDownDelaySeconds": 5,
        "prePromotionAnalysis": {"templates": [{"templateName": "healthy"}]},
    }
}


def _selector(ns: str, service: str) -> dict[str, str]:
    core = client.CoreV1Api(kube.api_for(KubernetesCluster.load("local")))
    return dict(core.read_namespaced_service(service, ns).spec.selector)


def test_blue_green_switches_the_active_service_only_when_promoted(
    argo_rollouts, namespace: str
) -> None:
    assert argo_release(_spec(namespace, V1, BLUE_GREEN)).ok
    old = _rollout(namespace)["status"]["stableRS"]
    assert _selector(namespace, "web")["rollouts-pod-template-hash"] == old
    seen: list[dict] = []
    answer = {"choice": "promote", "decided_by": "carol", "reason": "preview checked"}
    answering = _answer_pauses([answer], seen, namespace)
    result = argo_release(_spec(namespace, V2, BLUE_GREEN))
    answering.join(timeout=5)
    assert result.ok, result.summary
    at_pause = seen[0]["rollout"]["status"]
    assert [c["reason"] for c in at_pause["pauseConditions"]] == ["BlueGreenPause"]
    assert at_pause["blueGreen"]["activeSelector"] == old  # preview up, active untouched
    new = _rollout(namespace)["status"]["stableRS"]
    assert new != old and _selector(namespace, "web")["rollouts-pod-template-hash"] == new
    assert _replica_sets(namespace)[new] == (V2, 4, 4)
    assert [v.outcome for v in result.verdicts.values()] == ["Successful"]


def test_blue_green_with_a_failed_pre_promotion_analysis_never_switches(
    argo_rollouts, namespace: str
) -> None:
    assert argo_release(_spec(namespace, V1, BLUE_GREEN)).ok
    old = _rollout(namespace)["status"]["stableRS"]
    failing = {"blueGreen": {**BLUE_GREEN["blueGreen"]}}
    failing["blueGreen"]["prePromotionAnalysis"] = {"templates": [{"templateName": "erroring"}]}
    result = argo_release(_spec(namespace, V2, failing))
    assert not result.ok and "pre-promotion analysis" in result.summary
    status = _rollout(namespace)["status"]
    assert status["abort"] is True and status["stableRS"] == old
    assert _selector(namespace, "web")["rollouts-pod-template-hash"] == old
    assert _replica_sets(namespace)[old] == (V1, 4, 4)


def test_what_argo_cannot_do_is_refused_before_any_rollout_exists(
    argo_rollouts, namespace: str
) -> None:
    routed = {
        "canary": {
            "steps": [{"setWeight": 50}],
            "stableService": "web-stable",
            "canaryService": "web-canary",
            "trafficRouting": {"plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "web"}}},
        }
    }
    with pytest.raises(SpecError, match="trafficRouting"):
        argo_release(_spec(namespace, V1, routed))
    api = client.CustomObjectsApi(kube.api_for(KubernetesCluster.load("local")))
    listed = api.list_namespaced_custom_object("argoproj.io", "v1alpha1", namespace, "rollouts")
    assert listed["items"] == []
    core = client.CoreV1Api(kube.api_for(KubernetesCluster.load("local")))
    assert core.list_namespaced_service(namespace).items == []


def test_a_rollback_puts_the_rollouts_previous_template_back_and_never_further(
    argo_rollouts, namespace: str
) -> None:
    from flows.rollback import rollback

    straight = {"canary": {"steps": [{"setWeight": 50}, {"setWeight": 100}]}}
    assert argo_release(_spec(namespace, V1, straight)).ok
    assert argo_release(_spec(namespace, V2, straight)).ok
    done = rollback(app="web", namespace=namespace)
    assert (done["from_image"], done["image"]) == (V2, V1), done["summary"]
    assert done["strategy"] == "canary (engine argo)"
    status = _rollout(namespace)["status"]
    assert status["phase"] == "Healthy" and status["stableRS"] == status["currentPodHash"]
    assert _replica_sets(namespace)[status["stableRS"]] == (V1, 4, 4)
    again = rollback(app="web", namespace=namespace)  # a re-run keeps the decided target
    assert again["image"] == V1 and again["reused"] is True
    assert _replica_sets(namespace)[_rollout(namespace)["status"]["stableRS"]][0] == V1


def test_a_person_aborting_at_the_pause_sends_argo_back_to_stable(
    argo_rollouts, namespace: str
) -> None:
    assert argo_release(_spec(namespace, V1, CANARY)).ok
    dave = {"choice": "abort", "decided_by": "dave", "reason": "latency looks off"}
    answering = _answer_pauses([dave], [], namespace)
    result = argo_release(_spec(namespace, V2, CANARY))
    answering.join(timeout=5)
    assert not result.ok and "aborted" in result.summary
    assert [(d.choice, d.decided_by) for d in result.decisions] == [("abort", "dave")]
    status = _rollout(namespace)["status"]
    assert status["abort"] is True and status["phase"] == "Degraded"
    replica_sets = _replica_sets(namespace)
    assert replica_sets[status["stableRS"]] == (V1, 4, 4)
    assert {img: n for img, n, _ in replica_sets.values()} == {V1: 4, V2: 0}
    assert result.verdicts == {}  # the step analysis after the pause never ran


def test_an_inconclusive_analysis_asks_a_person_and_their_promote_moves_argo_on(
    argo_rollouts, namespace: str
) -> None:
    """Neither condition holds (0.7 between failure < 0.5 and success >= 0.95): Argo pauses."""
    unsure = AnalysisTemplate.model_validate(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "AnalysisTemplate",
            "metadata": {"name": "unsure"},
            "spec": {
                "metrics": [
                    {
                        "name": "unsure",
                        "count": 1,
                        "successCondition": "result[0] >= 0.95",
                        "failureCondition": "result[0] < 0.5",
                        "provider": {"prometheus": {"query": "vector(0.7)"}},
                    }
                ]
            },
        }
    )
    steps = [{"analysis": {"templates": [{"templateName": "unsure"}]}}, {"setWeight": 100}]
    strategy = {"canary": {"steps": [{"setWeight": 50}, *steps]}}
    TEMPLATES.append(unsure)
    try:
        assert argo_release(_spec(namespace, V1, strategy)).ok
        seen: list[dict] = []
        erin = {"choice": "promote", "decided_by": "erin", "reason": "0.7 is fine for now"}
        answering = _answer_pauses([erin], seen, namespace)
        result = argo_release(_spec(namespace, V2, strategy))
        answering.join(timeout=5)
    finally:
        TEMPLATES.remove(unsure)
    assert result.ok, result.summary
    (at_pause,) = seen
    assert [c["reason"] for c in at_pause["rollout"]["status"]["pauseConditions"]] == [
        "InconclusiveAnalysisRun"
    ]
    assert [v.outcome for v in result.verdicts.values()] == ["Inconclusive"]
    assert [(d.choice, d.decided_by) for d in result.decisions] == [("promote", "erin")]
    status = _rollout(namespace)["status"]
    assert status["phase"] == "Healthy" and status["stableRS"] == status["currentPodHash"]
    assert _replica_sets(namespace)[status["stableRS"]] == (V2, 4, 4)
