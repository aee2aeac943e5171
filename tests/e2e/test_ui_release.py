"""A canary release started, paused, promoted and checked in the Prefect UI, as a person would.

Headless Chromium (Debian's, driven by Playwright) logs in to the platform's UI, opens the
`release` deployment of prefect.yaml, fills its Custom run form (a Rollout's YAML with a
promotion pause, and the image) and starts it; a process worker of a pool of its own runs it.
At the pause the test presses Resume, answers the typed form (promote, by whom, why) and waits
for Completed, then finds the run's artifacts in the UI. The release is checked where it
happened too: the run through the API, the Deployments on the cluster, and the new version's
real pods (the pod runner) answering /health. Screenshots of every step go to $KYB_SCREENSHOTS
(else the test's tmp folder); docs/ui/ keeps the README's.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import httpx
import pytest
import yaml
from kubernetes import client
from playwright.sync_api import Locator, Page, expect
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterName,
)
from prefect.states import Cancelled

from blocks import KubernetesCluster
from core.release.rollout import load_rollout
from sandbox.example_image import build_example, docker_client, push
from sandbox.platform import BLOCK_NAME, Platform
from sandbox.podrunner import RUN_LABEL
from tests.e2e.conftest import ui_url
from tests.integration.release_helpers import Scripted, release_flow, settle

REPLICAS = 2
PAUSED_WITHIN = 120  # seconds from Submit: the worker polls every 2 s, a flow run starts in ~10 s
DONE_WITHIN = 90  # seconds from the answer: promote to 100%, scale the canary down
DECIDED_BY = "e2e-browser"
REASON = "canary looked healthy in the browser test"


def rollout_yaml(namespace: str) -> str:
    """A canary Rollout of app `web`: 50% to the canary, then a pause with no duration.

    Its pods run for real (the pod runner's label) and turn Ready on /health.
    """
    return f"""\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: web, namespace: {namespace}}}
spec:
  replicas: {REPLICAS}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web, {RUN_LABEL}: "true"}}}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
        - name: web
          ports: [{{name: http, containerPort: 8080}}]
          readinessProbe: {{httpGet: {{path: /health, port: http}}, periodSeconds: 1}}
  strategy:
    canary:
      steps:
        - setWeight: 50
        - pause: {{}}
"""


@pytest.fixture
def images(platform: Platform, tmp_path: Path) -> dict[str, str]:
    """Versions v1 and v2 of the example service, by digest in the platform's registry."""
    dc = docker_client(platform)
    tag = uuid.uuid4().hex[:10]
    base = build_example(dc, tmp_path / "context", f"{platform.registry.address}/ui-test:{tag}")
    found = {version: push(platform, dc, base, version) for version in ("v1", "v2")}
    dc.images.remove(base, force=True)
    dc.close()
    return found


@pytest.fixture
def cluster(platform: Platform) -> KubernetesCluster:
    """The platform's cluster block, loaded before the browser starts.

    Playwright's sync API keeps an event loop on this thread, where Prefect's sync-or-async
    calls (Block.load) would hand back a coroutine.
    """
    return KubernetesCluster.load(BLOCK_NAME)


@pytest.fixture
def stable(namespace: str, images: dict[str, str]) -> str:
    """v1 released first (in this process, no pause: a first deploy), the version to move from."""
    first = load_rollout(rollout_yaml(namespace), image=images["v1"])
    result = release_flow(first, Scripted())
    assert result.ok, result.summary
    return images["v1"]


@pytest.fixture
def left() -> Iterator[list[str]]:
    """Names of the flow runs the test starts: one left unfinished is cancelled at the end.

    (Else a later worker of the pool would pick it up, or find it paused, long after the test.)
    """
    names: list[str] = []
    yield names
    with get_client(sync_client=True) as c:
        runs = c.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=names)))
        for run in runs:
            if run.state is not None and not run.state.is_final():
                c.set_flow_run_state(run.id, Cancelled(message="left by the UI test"), force=True)


class Shots:
    """Numbered screenshots of the browser's viewport (1280x800) in one folder."""

    def __init__(self, page: Page, folder: Path) -> None:
        self.page, self.folder, self.count = page, folder, 0

    def take(self, name: str) -> Path:
        """Save the viewport as `NN-name.png`; its path."""
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        self.page.screenshot(path=path)
        return path


def field(scope: Page | Locator, title: str, kind: str = "textarea, input") -> Locator:
    """The input of the schema form's property titled `title` (in a page or a dialog)."""
    page = scope if isinstance(scope, Page) else scope.page
    # `has` is matched inside each property: a locator from the page's root, not the scope's
    label = page.locator(".schema-form-property__label", has_text=re.compile(rf"^{title}\b"))
    prop = scope.locator(".schema-form-property").filter(has=label).first
    return prop.locator(kind).first


def run_id_of(page: Page) -> UUID:
    """The flow run the page shows (its URL ends in /runs/flow-run/<id>)."""
    found = re.search(r"/flow-run/([0-9a-f-]{36})", page.url)
    assert found, f"not a flow run's page: {page.url}"
    return UUID(found[1])


def api_state(run_id: UUID) -> tuple[str, str]:
    """The run's state type and name, read through the API."""
    with get_client(sync_client=True) as c:
        state = c.read_flow_run(run_id).state
    return (state.type.value, state.name) if state else ("", "")


def wait_state(run_id: UUID, want: str, seconds: float) -> str:
    """Poll the API until the run's state type is `want`; fail on a final other state."""
    deadline = time.monotonic() + seconds
    kind = name = ""
    while time.monotonic() < deadline:
        kind, name = api_state(run_id)
        if kind == want:
            return name
        assert kind not in ("FAILED", "CRASHED", "CANCELLED"), f"run ended {name}"
        time.sleep(1)  # bounded by the deadline: the run's state changes within seconds
    raise AssertionError(f"run still {name or kind or 'unknown'} after {seconds}s, want {want}")


def serving(kube: client.ApiClient, namespace: str) -> dict[str, str]:
    """Pod name -> the version its process answers on /health, for every Ready pod of `web`."""
    pods = client.CoreV1Api(kube).list_namespaced_pod(namespace, label_selector="app=web")
    found: dict[str, str] = {}
    for pod in pods.items:
        ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        if ready and pod.metadata.deletion_timestamp is None and pod.status.pod_ip:
            resp = httpx.get(f"http://{pod.status.pod_ip}:8080/health", timeout=5)
            found[pod.metadata.name] = resp.json()["version"] if resp.is_success else "-"
    return found


def test_a_canary_release_is_started_paused_and_promoted_in_the_ui(
    platform: Platform,
    kube: client.ApiClient,
    cluster: KubernetesCluster,
    namespace: str,
    images: dict[str, str],
    stable: str,
    worker: Path,
    ui: Page,
    screenshots: Path,
    left: list[str],
) -> None:
    v2 = images["v2"]
    shots = Shots(ui, screenshots)
    print(f"screenshots in {screenshots}")
    run_name = f"ui-canary-{namespace}"
    left.append(run_name)

    # The deployment, found as a person finds it, and its Custom run form.
    ui.goto(f"{ui_url(platform)}/dashboard")  # a fresh page: no toast left from the login
    ui.get_by_role("button", name="Deployments").first.click()
    deployment = ui.locator("a[href*='/deployments/deployment/']")
    deployment.filter(has_text=re.compile(r"^release$")).click()
    expect(ui.get_by_role("button", name="Run", exact=True)).to_be_visible()
    shots.take("deployment")
    ui.get_by_role("button", name="Run", exact=True).click()
    ui.get_by_text("Custom run").click()
    expect(ui.get_by_text("Rollout YAML")).to_be_visible()

    # Blocks are picked from a list of the saved ones (the parameter is typed by block kind).
    ui.get_by_role("button", name="Environment", exact=True).first.click()
    picker = ui.locator(".p-select").first
    picker.locator("button").first.focus()
    ui.keyboard.press("ArrowDown")  # the keyboard opens it (headless, a click opened none)
    options = ui.locator(".p-select-option")
    expect(options.filter(has_text="staging")).to_be_visible()
    assert {"staging", "production"} <= set(options.all_text_contents())
    shots.take("block-selector")
    ui.keyboard.press("Escape")
    ui.get_by_role("button", name="None", exact=True).first.click()  # no environment: the YAML
    # A canary with a promotion pause: the Rollout's YAML and the image; the rest left default.
    ui.locator(".flow-run-name-input input").fill(run_name)
    field(ui, "Image").fill(v2)
    rollout = field(ui, "Rollout YAML")
    rollout.fill(rollout_yaml(namespace))
    # the whole YAML in view, as a person drags the textarea's corner; the Image field on top
    rollout.evaluate("el => { el.style.height = (el.scrollHeight + 4) + 'px' }")
    field(ui, "Image").evaluate("el => el.closest('.schema-form-property').scrollIntoView()")
    shots.take("form-filled")
    ui.get_by_role("button", name="Submit").click()
    ui.wait_for_url(re.compile(r"/deployments/deployment/[0-9a-f-]{36}($|\?)"))
    expect(ui.get_by_text(f"{run_name} scheduled to start").first).to_be_visible()  # a toast
    shots.take("submitted")
    # the deployment's next run, then (once a worker took it) its runs list: polled by the page
    ui.get_by_role("link", name=run_name).first.click(timeout=60_000)
    ui.wait_for_url(re.compile(r"/flow-run/"))
    run_id = run_id_of(ui)
    with get_client(sync_client=True) as c:
        created = c.read_flow_run(run_id)
    assert created.name == run_name
    assert yaml.safe_load(created.parameters["rollout"])["spec"]["strategy"] == {
        "canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}
    }
    assert created.parameters["image"] == v2
    shots.take("run-started")

    # The promotion pause: the page shows Paused, Resume opens the typed form.
    assert wait_state(run_id, "PAUSED", PAUSED_WITHIN)
    badge = ui.locator(".page-heading-flow-run__meta .state-badge")  # the run's state
    expect(badge).to_have_text("Paused", timeout=15_000)
    half = {"web": (stable, 1, 1), "web-canary": (v2, 1, 1)}  # 50% of 2 replicas
    assert settle(cluster, namespace, half) == half
    shots.take("paused")
    ui.get_by_role("button", name="Resume").click()
    dialog = ui.get_by_role("dialog")
    expect(dialog.get_by_text("canary at 50%")).to_be_visible()  # the pause's own description
    choice = field(dialog, "Choice", ".p-select-button__control")
    choice.focus()  # the keyboard opens its list (headless, a click opened none)
    ui.keyboard.press("ArrowDown")
    ui.get_by_role("option", name="promote", exact=True).click()
    expect(choice).to_have_text("promote")
    field(dialog, "Decided By").fill(DECIDED_BY)
    field(dialog, "Reason").fill(REASON)
    shots.take("resume-form")
    dialog.get_by_role("button", name="Submit").click()
    expect(dialog).to_be_hidden()

    # Promoted to 100%: Completed in the UI, and the run's artifacts there.
    wait_state(run_id, "COMPLETED", DONE_WITHIN)
    expect(badge).to_have_text("Completed", timeout=15_000)
    with get_client(sync_client=True) as c:
        made = c.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    keyed = {a.key: a for a in made if a.key}
    plan, report = keyed.get("release-plan-web"), keyed.get("release-result-web")
    progress = [a for a in made if a.type == "progress"]
    assert plan is not None and plan.type == "table", sorted(keyed)
    assert report is not None and report.type == "markdown", sorted(keyed)
    assert f"Release of `web` to `{namespace}`: succeeded" in str(report.data)
    assert f"promote by {DECIDED_BY}: {REASON}" in str(report.data)
    assert len(progress) == 1 and float(progress[0].data) == 100.0, progress
    ui.get_by_text("Artifacts", exact=True).click()  # the run's tab
    for key in keyed:  # the plan, the result, the progress (and the steps table's versions)
        expect(ui.get_by_text(key, exact=True).first).to_be_visible()
    shots.take("completed")  # the state, the graph with its artifacts, the tab
    # the oldest, last in the grid: the plan, beside the result and the progress
    plan_card = ui.get_by_text("release-plan-web", exact=True).first
    plan_card.evaluate("el => el.scrollIntoView({block: 'center'})")
    shots.take("artifacts")
    ui.get_by_text("release-result-web", exact=True).first.click()
    expect(ui.get_by_text(f"Release of web to {namespace}: succeeded")).to_be_visible()
    shots.take("release-result")

    # On the cluster: v2 at every replica, the canary scaled away, and v2's own pods answering.
    done = {"web": (v2, REPLICAS, REPLICAS), "web-canary": (v2, 0, 0)}
    assert settle(cluster, namespace, done) == done
    deadline = time.monotonic() + 30
    while (answers := serving(kube, namespace)) and set(answers.values()) != {"v2"}:
        assert time.monotonic() < deadline, answers  # v1's pods are leaving (grace: 5 s)
        time.sleep(1)  # bounded by the deadline: v1's pods stop within their 5 s grace
    assert list(answers.values()) == ["v2"] * REPLICAS, answers
