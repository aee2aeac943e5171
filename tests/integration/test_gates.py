"""The deployment gates against the real platform.

apiserver dry-runs with Pod Security Admission, promtool, migrations, post-deploy checks on scraped
example instances, and human pauses.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prefect import flow, resume_flow_run
from prefect.artifacts import Artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

from blocks import KubernetesCluster, PrometheusServer
from core.delivery.checklist import (
    ALERTS,
    MANIFESTS,
    MIGRATIONS,
    Checklist,
    Item,
    Status,
    human_items,
)
from core.errors import ConfigError
from sandbox.fleet import scraped
from sandbox.load import Load
from sandbox.platform import BLOCK_NAME, Platform
from tasks.gates import (
    check_alert_rules,
    check_migrations,
    confirm_human_items,
    post_deploy_checks,
    pre_deploy_gates,
    publish_checklist,
    render_overlay,
    validate_manifests,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kyb-platform"
DEPLOY = EXAMPLE / "deploy"
ALERTS_DIR = DEPLOY / "alerts"


@pytest.fixture(scope="module")
def cluster(platform: Platform) -> KubernetesCluster:
    return KubernetesCluster.load(BLOCK_NAME)


@pytest.fixture(scope="module")
def prom(platform: Platform) -> PrometheusServer:
    return PrometheusServer.load(BLOCK_NAME)


def _wrap(tmp_path: Path, base: Path, namespace: str, patch: str = "") -> Path:
    """An overlay on top of `base` that renames its namespace (and applies a JSON6902 patch)."""
    wrapper = tmp_path / namespace
    wrapper.mkdir()
    rel = os.path.relpath(base, wrapper)  # kustomize refuses absolute resource paths
    text = (
        f"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"namespace: {namespace}\nresources:\n- {rel}\n"
    )
    if patch:
        (wrapper / "patch.yaml").write_text(patch)
        text += "patches:\n- path: patch.yaml\n  target: {kind: Deployment, name: kyb-platform}\n"
    (wrapper / "kustomization.yaml").write_text(text)
    return wrapper


@contextlib.contextmanager
def _deleted_afterwards(kube, namespace: str):
    try:
        yield namespace
    finally:
        with contextlib.suppress(ApiException):
            client.CoreV1Api(kube).delete_namespace(namespace)


@pytest.mark.parametrize("env", ["staging", "production"])
def test_example_overlays_pass_the_apiserver(cluster, kube, tmp_path, env: str) -> None:
    # In a fresh namespace: the shared kyb-<env> may hold the delivery's Deployment already,
    # whose selector (with the release's track label) the overlay's cannot be changed into.
    namespace = f"t-{uuid.uuid4().hex[:6]}-{env}"
    with _deleted_afterwards(kube, namespace):
        objects = render_overlay(_wrap(tmp_path, DEPLOY / env, namespace))
        assert validate_manifests(cluster, objects) == []
        # only the overlay's Namespace is written for real; the rest was a dry-run
        core = client.CoreV1Api(kube)
        assert core.read_namespace(namespace).metadata.name == namespace
        names = [c.metadata.name for c in core.list_namespaced_config_map(namespace).items]
        assert not [n for n in names if n.startswith("kyb-config")]  # dry-run: not written


PRIVILEGED = """\
- op: add
  path: /spec/template/spec/containers/0/securityContext/privileged
  value: true
- op: replace
  path: /spec/template/spec/containers/0/securityContext/allowPrivilegeEscalation
  value: true
- op: replace
  path: /spec/template/spec/containers/0/securityContext/runAsUser
  value: 0
"""


def test_privileged_overlay_is_rejected_by_pod_security(cluster, kube, tmp_path) -> None:
    name = f"t-{uuid.uuid4().hex[:6]}-priv"
    overlay = _wrap(tmp_path, DEPLOY / "production", name, PRIVILEGED)
    with _deleted_afterwards(kube, name):
        problems = validate_manifests(cluster, render_overlay(overlay))
        assert len(problems) == 1, problems
        (line,) = problems
        assert line.startswith(
            f"Deployment {name}/kyb-platform: rejected by Pod Security "
            'Admission: would violate PodSecurity "restricted:latest"'
        )
        assert "privileged" in line and "runAsUser=0" in line, line
        assert client.AppsV1Api(kube).list_namespaced_deployment(name).items == []


def test_broken_overlay_and_unknown_kind_are_clear(cluster, kube, tmp_path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "kustomization.yaml").write_text("resources:\n- missing.yaml\n")
    with pytest.raises(ConfigError, match=r"kustomize could not render the overlay: .*missing"):
        render_overlay(broken)
    crd = {  # a kind no CRD of the platform serves (Argo's Rollout is served now)
        "apiVersion": "widgets.example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "r", "namespace": "default"},
    }
    no_ns = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": f"t-{uuid.uuid4().hex[:6]}-none"},
    }
    problems = validate_manifests(cluster, [crd, no_ns])
    assert "is not served by this apiserver (is its CRD installed?)" in problems[0]
    assert "namespaces" in problems[1] and "not found" in problems[1], problems


def test_alert_rules_pass_and_broken_ones_fail_with_promtool_message(tmp_path) -> None:
    rules = ALERTS_DIR / "deployment-alerts.yml"
    assert check_alert_rules(rules, ALERTS_DIR / "deployment-alerts.test.yml") == []
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n- name: g\n  rules:\n  - alert: Broken\n    expr: rate(x[5m] > 1\n")
    (problem,) = check_alert_rules(bad)
    assert problem.startswith("promtool check rules bad.yml: ")
    assert 'rule 1, "Broken": could not parse expression' in problem, problem
    assert "parse error: unclosed left parenthesis" in problem, problem
    failing = tmp_path / "failing.test.yml"
    failing.write_text(
        (ALERTS_DIR / "deployment-alerts.test.yml")
        .read_text()
        .replace("rule_files:\n- deployment-alerts.yml", f"rule_files:\n- {rules}")
        .replace("'0+60x15'", "'0+1x15'", 1)
    )
    (problem,) = check_alert_rules(rules, failing)
    assert problem.startswith("promtool test rules failing.test.yml: "), problem
    assert "alertname: HighErrorRate, time: 10m" in problem, problem


def test_missing_migrations_file_says_what_to_add(tmp_path) -> None:
    item = check_migrations(tmp_path)
    assert item.name == MIGRATIONS and item.status is Status.FAILED
    assert f"declare the release's schema migrations in {tmp_path}/deploy/migrations.yaml" in (
        item.detail
    )
    assert "`migrations: []` with a `reason:`" in item.detail
    assert check_migrations(EXAMPLE).status is Status.PASSED


def test_pre_deploy_gates_combine_ci_and_the_machine_checks(cluster, kube, tmp_path) -> None:
    name = f"t-{uuid.uuid4().hex[:6]}-gates"
    with _deleted_afterwards(kube, name):
        ci = {"tests": (True, "120 passed"), "scan": (False, "1 critical finding")}
        checklist = pre_deploy_gates(
            cluster,
            EXAMPLE,
            _wrap(tmp_path, DEPLOY / "staging", name),
            ci,
            image="127.0.0.1:5001/kyb-platform:v2.1.0",
        )
    status = {i.name: i.status for i in checklist.items}
    assert status[MANIFESTS] is Status.PASSED
    assert status[ALERTS] is Status.PASSED and status[MIGRATIONS] is Status.PASSED
    assert status["All tests passing"] is Status.PASSED
    assert [i.name for i in checklist.failures()] == [
        "Security scan passed",
        "Image deployed by digest",
    ]
    assert {i.name for i in checklist.pending()} == {i.name for i in human_items("pre")}
    assert not checklist.ok()


def _status(items: list[Item]) -> dict[str, tuple[Status, str]]:
    return {i.name: (i.status, i.detail) for i in items}


def _settled(prom, url: str, labels: dict[str, str], timeout: float = 45.0):
    """Post-deploy checks, repeated until every Prometheus item has data (rate needs scrapes)."""
    deadline = time.monotonic() + timeout
    while True:
        found = _status(
            post_deploy_checks(
                prom,
                url,
                labels["service"],
                labels["namespace"],
                labels.get("track", "stable"),
                color=labels.get("color"),
            )
        )
        waiting = [d for _s, d in found.values() if d.startswith("no ")]
        if not waiting or time.monotonic() > deadline:
            return found
        time.sleep(2)


def test_post_deploy_checks_pass_for_a_healthy_instance(platform: Platform, prom) -> None:
    labels = {
        "service": f"gate-{uuid.uuid4().hex[:6]}",
        "namespace": "kyb-staging",
        "track": "stable",
    }
    with scraped(platform.prometheus, labels) as inst, Load([inst.url]):
        found = _settled(prom, inst.url, labels)
    assert {name: s for name, (s, _d) in found.items()} == {
        "Health checks passing": Status.PASSED,
        "Performance metrics normal": Status.PASSED,
        "Error rates acceptable": Status.PASSED,
        "Metrics collecting": Status.PASSED,
    }, found


def test_post_deploy_checks_of_a_blue_green_release_select_its_active_color(
    platform: Platform, prom
) -> None:
    """Blue-green pods carry `color`, not `track`: the checks select the active color's pods."""
    labels = {"service": f"gate-{uuid.uuid4().hex[:6]}", "namespace": "kyb-production"}
    with scraped(platform.prometheus, {**labels, "color": "green"}) as inst, Load([inst.url]):
        found = _settled(prom, inst.url, {**labels, "color": "green"})
        by_track = _status(
            post_deploy_checks(prom, None, labels["service"], labels["namespace"], settle_seconds=5)
        )
    assert all(s is Status.PASSED for s, _d in found.values()), found
    status, detail = by_track["Metrics collecting"]  # what the checks found before: nothing
    assert status is Status.FAILED and "no scrape target" in detail, detail


def test_post_deploy_checks_fail_the_error_rate_at_30_percent(platform: Platform, prom) -> None:
    labels = {
        "service": f"gate-{uuid.uuid4().hex[:6]}",
        "namespace": "kyb-staging",
        "track": "stable",
    }
    with scraped(platform.prometheus, labels, error_rate=0.3) as inst, Load([inst.url]):
        found = _settled(prom, inst.url, labels)
        status, detail = found["Error rates acceptable"]
        assert status is Status.FAILED and "wanted success: result[0] <= 0.05" in detail, detail
        assert not detail.startswith("no "), detail
        assert found["Health checks passing"][0] is Status.PASSED


def test_metrics_fail_for_a_service_nobody_scrapes(prom) -> None:
    ghost = f"ghost-{uuid.uuid4().hex[:6]}"
    found = _status(post_deploy_checks(prom, None, ghost, "kyb-staging", settle_seconds=5))
    assert found["Health checks passing"][0] is Status.SKIPPED
    status, detail = found["Metrics collecting"]
    assert status is Status.FAILED and "no scrape target" in detail, detail
    status, detail = found["Error rates acceptable"]
    assert status is Status.FAILED and detail.startswith("no data for error-rate"), detail


@flow(name="gates-confirm-test")
def _confirm(auto_approve: bool, timeout_seconds: float, key: str = "") -> Checklist:
    checklist = Checklist().add(*human_items("pre"))
    confirm_human_items(checklist, auto_approve, timeout_seconds)
    if key:
        publish_checklist(checklist, key, "Gates test")
    return checklist


def test_auto_approve_confirms_every_human_item_and_publishes(platform: Platform) -> None:
    key = f"gates-{uuid.uuid4().hex[:8]}"
    checklist = _confirm(True, 5, key)
    assert checklist.ok()
    assert {(i.status, i.who) for i in checklist.items} == {(Status.CONFIRMED, "demo-mode")}
    artifact = Artifact.get(f"checklist-{key}")
    assert artifact is not None and artifact.type == "markdown"
    assert artifact.data.startswith("# Gates test\n\n**ready: 0 passed, 11 confirmed")
    assert "- [x] Rollback plan reviewed (human, Communication): **confirmed** by demo-mode" in (
        artifact.data
    )


def test_no_answer_declines_never_confirms(platform: Platform) -> None:
    checklist = _confirm(False, 2)
    assert {(i.status, i.who) for i in checklist.items} == {(Status.DECLINED, "timeout")}
    assert "no answer within 2s" in checklist.items[0].detail
    assert not checklist.ok()


def test_a_person_confirms_in_the_paused_run(platform: Platform) -> None:
    run_name = f"confirm-{uuid.uuid4().hex[:8]}"

    def answer() -> None:
        with get_client(sync_client=True) as c:
            for _ in range(120):  # bounded: up to 60 s for the run to pause
                runs = c.read_flow_runs(
                    flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[run_name]))
                )
                if runs and runs[0].state and runs[0].state.is_paused():
                    resume_flow_run(
                        runs[0].id, run_input={"confirmed": True, "by": "alice", "note": "all done"}
                    )
                    return
                time.sleep(0.5)

    helper = threading.Thread(target=answer, daemon=True)
    helper.start()
    checklist = _confirm.with_options(flow_run_name=run_name)(False, 60)
    helper.join(timeout=5)
    assert {(i.status, i.who, i.detail) for i in checklist.items} == {
        (Status.CONFIRMED, "alice", "all done")
    }
