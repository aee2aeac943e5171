"""Post-deployment checks, the checklist artifact, and typed pauses for what a person confirms."""

from __future__ import annotations

import math
import os
import time
from typing import Any

import httpx
from prefect import pause_flow_run, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.context import get_run_context
from prefect.exceptions import FlowPauseTimeout
from prefect.input import RunInput
from prefect.states import Running

from blocks import PrometheusServer
from blocks.endpoint import ServiceEndpoint
from core.analysis.builtins import BUILTINS
from core.analysis.criteria import Criteria
from core.analysis.render import render, values
from core.ci.output import artifact_key
from core.delivery.checklist import (
    ERROR_RATE,
    HEALTH,
    METRICS,
    PERFORMANCE,
    Checklist,
    Item,
    Phase,
    Status,
    machine,
)
from core.errors import ConfigError
from core.release.observed import Outcome
from tasks.health import check_health
from tasks.prometheus import instant_query

POLL_SECONDS = int(os.environ.get("KYB_PAUSE_POLL_SECONDS", "5"))
HEALTH_BUDGET_SECONDS = 30.0
SETTLE_SECONDS = 60.0  # the rate window: by then pods that serve have data, or something is wrong


def _query(prometheus: PrometheusServer, query: str) -> tuple[list[dict[str, Any]] | None, str]:
    """(result, "") or (None, why the query failed after its retries)."""
    try:
        return instant_query(prometheus, query), ""
    except httpx.HTTPStatusError as exc:
        return None, f"Prometheus answered HTTP {exc.response.status_code} to {query}"
    except (httpx.HTTPError, ValueError, KeyError) as exc:  # the type only: no URL in the text
        return None, f"Prometheus query failed ({type(exc).__name__}): {query}"


def _selector(labels: dict[str, str]) -> str:
    for value in labels.values():
        if not value or any(c in value for c in '"\\\n'):
            raise ConfigError(
                f"label value {value!r} must be non-empty, without quotes, backslashes or newlines"
            )
    return ", ".join(f'{k}="{v}"' for k, v in labels.items())


def _window(prometheus: PrometheusServer) -> str:
    """The rate window: a minute, and at least four scrapes (rate needs two samples)."""
    return f"{max(60, math.ceil(4 * prometheus.scrape_interval_seconds))}s"


def _pods(args: dict[str, str]) -> str:
    """Which pods a check measured: a blue-green color, else a track."""
    return f"color {args['color']}" if args.get("color", ".*") != ".*" else f"track {args['track']}"


def _waiting(item: Item) -> bool:
    """A Prometheus item that failed only because its data does not exist yet."""
    return item.status is Status.FAILED and (
        item.detail.startswith("no ") or "no http_requests_total samples" in item.detail
    )


def _template_item(
    prometheus: PrometheusServer, name: str, template: str, args: dict[str, str], unit: str
) -> Item:
    """Measure a built-in template's one metric now and judge it by its condition."""
    rendered = render(BUILTINS[template], args)[template]
    criteria = Criteria.of(rendered.metric, values(BUILTINS[template], args, {}))
    result, why = _query(prometheus, rendered.query)
    if result is None:
        return machine(name, "post", False, why)
    if not result:
        return machine(
            name,
            "post",
            False,
            f"no data for {template} of {args['service-name']} "
            f"({_pods(args)}) in the last {args['window']}",
        )
    value = sum(float(series["value"][1]) for series in result)
    if math.isnan(value):
        return machine(
            name,
            "post",
            False,
            f"no requests in the last {args['window']}: {template} cannot be measured",
        )
    seen = f"{template} {value:.4g}{unit} over {args['window']}"
    outcome, _ = criteria.judge([value])
    if outcome is Outcome.SUCCESSFUL:
        return machine(name, "post", True, f"{seen} ({criteria})")
    return machine(name, "post", False, f"{seen}, wanted {criteria}")


def _metrics_item(prometheus: PrometheusServer, labels: dict[str, str]) -> Item:
    """Targets up and http_requests_total samples in the last minute."""
    sel = _selector(labels)
    up, why = _query(prometheus, f"up{{{sel}}}")
    if up is None:
        return machine(METRICS, "post", False, why)
    alive = sum(series["value"][1] == "1" for series in up)
    if not alive:
        told = f"{len(up)} targets, none up" if up else "no scrape target"
        return machine(METRICS, "post", False, f"{told} with {sel}: is the service scraped?")
    samples, why = _query(prometheus, f"sum(count_over_time(http_requests_total{{{sel}}}[1m]))")
    if samples is None:
        return machine(METRICS, "post", False, why)
    count = float(samples[0]["value"][1]) if samples else 0.0
    if not count:
        return machine(
            METRICS,
            "post",
            False,
            f"{alive} targets up, but no http_requests_total samples in the last minute for {sel}",
        )
    return machine(
        METRICS,
        "post",
        True,
        f"{alive} targets up, {count:.0f} http_requests_total samples in the last minute",
    )


@task(name="health-item", cache_policy=NO_CACHE)
def _health_item(base_url: str | ServiceEndpoint | None, budget_seconds: float) -> Item:
    if not base_url:
        return machine(HEALTH, "post", None, "no URL of the new version given to call /health")
    result = check_health(base_url, budget_seconds)
    return machine(HEALTH, "post", result.ok, f"{result.reason} ({result.attempts} attempts)")


def post_deploy_checks(
    prometheus: PrometheusServer,
    base_url: str | ServiceEndpoint | None,
    app: str,
    namespace: str,
    track: str = "stable",
    error_threshold: float | None = None,
    health_budget_seconds: float = HEALTH_BUDGET_SECONDS,
    color: str | None = None,
    settle_seconds: float = SETTLE_SECONDS,
) -> list[Item]:
    """The post-deployment machine items: health, performance, error rate, metrics collecting.

    Call it inside a flow: the health check and every query are tasks. A check never passes on
    missing data: no series, or no requests in the window, fails with the reason.

    Args:
        prometheus: the Prometheus block that scrapes the service.
        base_url: where /health of the new version is reached: a base URL, or a ServiceEndpoint
            (the apiserver's service proxy, in-cluster DNS); None skips the health check.
        app: the `service` label of the service's metrics.
        namespace: its `namespace` label.
        track: its `track` label (the settled version is "stable").
        color: a blue-green release's active color: its pods carry `color`, not `track`, so the
            checks select that color's pods instead.
        settle_seconds: how long a check without data yet is measured again before it fails.
        error_threshold: the highest acceptable error rate; the error-rate template's 0.05 if
            None.
        health_budget_seconds: the time the health check may take, retries included.

    Returns:
        The four post-deployment machine items.
    """
    pods = {"color": color} if color else {"track": track}
    labels = {"service": app, "namespace": namespace, **pods}
    _selector(labels)  # refuse unsafe label values before any query
    args = {
        "service-name": app,
        "namespace": namespace,
        "track": ".*" if color else track,
        "color": color or ".*",
        "window": _window(prometheus),
    }
    if error_threshold is not None:
        args["error-threshold"] = str(error_threshold)
    health = _health_item(base_url, health_budget_seconds)

    def measured() -> list[Item]:
        return [
            _template_item(prometheus, PERFORMANCE, "latency-p95", args, "s"),
            _template_item(prometheus, ERROR_RATE, "error-rate", args, ""),
            _metrics_item(prometheus, labels),
        ]

    # Pods that took their first requests a moment ago (a blue-green's new color, promoted just
    # now) have no rate yet: wait for their data, boundedly; a missing series still fails after.
    deadline, items = time.monotonic() + settle_seconds, measured()
    while any(_waiting(i) for i in items) and time.monotonic() < deadline:
        time.sleep(2 * prometheus.scrape_interval_seconds)  # a rate needs two new scrapes
        items = measured()
    return [health, *items]


def publish_checklist(checklist: Checklist, key: str, title: str = "Deployment checklist") -> str:
    """Publish the checklist as a markdown artifact keyed `checklist-<key>`; return that key."""
    key = artifact_key("checklist", key)
    create_markdown_artifact(checklist.as_markdown(title), key=key, description=checklist.summary())
    return key


class HumanConfirmation(RunInput):
    """The form a paused run shows for the checklist items only a person can confirm."""

    confirmed: bool = False
    by: str
    note: str = ""


def confirm_human_items(
    checklist: Checklist, auto_approve: bool, timeout_seconds: float, phase: Phase | None = None
) -> Checklist:
    """Ask a person to confirm every pending human item at once, in one typed pause.

    Call it from a flow (not a task). No answer within the timeout declines them all: nothing is
    confirmed by silence. With auto_approve (demo mode) they are confirmed as "demo-mode"
    without pausing.

    Args:
        checklist: the checklist; its pending human items are updated in place.
        auto_approve: confirm without asking (demo mode only).
        timeout_seconds: how long the pause waits for an answer.
        phase: only the items of this phase; all phases if None.

    Returns:
        The same checklist.
    """
    pending = checklist.pending("human", phase)
    if not pending:
        return checklist
    if auto_approve:
        answer = HumanConfirmation(confirmed=True, by="demo-mode", note="auto-approved (demo)")
    else:
        answer = _ask(pending, timeout_seconds)
    status = Status.CONFIRMED if answer.confirmed else Status.DECLINED
    for item in pending:
        fields = {**item.model_dump(), "status": status, "who": answer.by, "detail": answer.note}
        checklist.add(Item(**fields))
    return checklist


def _ask(pending: list[Item], timeout_seconds: float) -> HumanConfirmation:
    listed = "\n".join(f"- {i.name} ({i.phase}-deployment)" for i in pending)
    text = (
        f"Confirm that each of these is done; leave `confirmed` off to decline them:\n\n"
        f"{listed}\n\nNo answer within {timeout_seconds:.0f}s declines them all."
    )
    try:
        return pause_flow_run(
            wait_for_input=HumanConfirmation.with_initial_data(description=text),
            timeout=max(1, int(timeout_seconds)),
            poll_interval=POLL_SECONDS,
        )
    except FlowPauseTimeout:
        run_id = get_run_context().flow_run.id
        with get_client(sync_client=True) as client:  # back to Running, so the flow can go on
            client.set_flow_run_state(run_id, Running(), force=True)
        note = f"no answer within {timeout_seconds:.0f}s: not confirmed"
        return HumanConfirmation(confirmed=False, by="timeout", note=note)
