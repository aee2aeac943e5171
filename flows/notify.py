"""The `notify-run` flow: tell people how a pipeline run ended, started by the server.

prefect.yaml's `notify` deployment has triggers on the pipeline's runs ending Failed or Crashed,
and on rollbacks completing; the server's automation starts this flow on a worker, so a run whose
process died (Crashed) is still reported, and nothing is sent twice. The message is built from the
run as the API holds it: its flow, parameters, state and state message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any
from uuid import UUID

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_UI_URL

from flows.form import titled
from tasks.notify import ENV_BLOCK, MAX_REASON, PARAMETER, notify

#: The flows whose end is reported, and how each names what it worked on.
RELEASES = ("release", "rollback", "delivery")
RECOVERY = ("backup", "disaster-recovery", "dr-drill")


def block_reference(parameters: Mapping[str, Any]) -> str | None:
    """The block to notify through: the run's `notify_block` parameter, else KYB_NOTIFY_BLOCK."""
    return str(parameters.get(PARAMETER) or "") or os.environ.get(ENV_BLOCK) or None


def run_url(flow_run: Any) -> str:
    """The flow run's page in the Prefect UI ("" when no UI URL is known)."""
    ui = (PREFECT_UI_URL.value() or "").rstrip("/")
    return f"{ui}/runs/flow-run/{flow_run.id}" if ui else ""


def reason_of(state: Any) -> str:
    """Why a run ended as it did: the state's message (its exception), cut to MAX_REASON."""
    reason = state.message or state.name or "unknown"
    return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 3] + "..."


def _block_name(value: Any) -> str:
    """The saved name in a block parameter as the API stores it ("" if none)."""
    ref = value.get("$ref") if isinstance(value, Mapping) else None
    slug = ref.get("block_document_slug", "") if isinstance(ref, Mapping) else ""
    return slug.rpartition("/")[2]


WAITING = {  # what a kyb event says happened
    "kyb.release.paused": "waiting for a person",
    "kyb.release.reconciled": "its run died half-way; reconciled",
    "kyb.rollback.reconciled": "its run died half-way; reconciled",
}


def describe(
    flow_name: str, flow_run: Any, state: Any, event: str = "", why: str = ""
) -> tuple[str, str, str]:
    """The event, title and body of a notification about a pipeline run.

    About how it ended (its state); or, given a kyb event (`kyb.release.paused`), about that
    event, with `why` as the reason.
    """
    params = flow_run.parameters or {}
    if event:
        app, where, image = _what(params)
        happened = WAITING.get(event, event.rpartition(".")[2])
        title = f"{flow_name} of {app} in {where or '?'}: {happened}"
        body = [title, "", f"app: {app}", f"namespace: {where or '?'}", f"image: {image}"]
        body.append(f"reason: {why[:MAX_REASON] or 'not given'}")
        return event.removeprefix("kyb.").replace(".", "-"), title, _ending(body, flow_run)
    if flow_name in RECOVERY:
        scope = ", ".join(params.get("namespaces") or []) or "the default namespaces"
        happened = state.type.value.lower()
        title = f"{flow_name} of {scope}: {happened}"
        body = [title, "", f"reason: {reason_of(state)}"]
        return f"{flow_name}-{happened}", title, _ending(body, flow_run)
    app, where, image = _what(params)
    if state.is_completed():
        event, happened = f"{flow_name}-completed", "completed"
        if flow_name == "rollback":
            event, happened = "rolled-back", "rolled back"
    elif "ReleaseFailed" in reason_of(state):
        event, happened = f"{flow_name}-rolled-back", "failed and was rolled back automatically"
    else:
        event, happened = f"{flow_name}-{state.type.value.lower()}", state.type.value.lower()
    title = f"{flow_name} of {app} in {where or '?'}: {happened}"
    body = [title, "", f"app: {app}", f"namespace: {where or '?'}", f"image: {image}"]
    if not state.is_completed():
        body.append(f"reason: {reason_of(state)}")
    return event, title, _ending(body, flow_run)


def _what(params: Mapping[str, Any]) -> tuple[str, str, str]:
    """(app, namespace or environment, image) a release, rollback or delivery run names."""
    spec = params.get("spec") if isinstance(params.get("spec"), Mapping) else params
    app = spec.get("app") or params.get("app") or "?"
    env = _block_name(params.get("environment"))
    where = spec.get("namespace") or params.get("namespace") or (env and f"environment {env}")
    image = spec.get("image") or params.get("image") or params.get("commit") or "-"
    return app, where, image


def _ending(lines: list[str], flow_run: Any) -> str:
    return "\n".join([*lines, f"flow run: {flow_run.name} {run_url(flow_run)}".rstrip()])


@flow(name="notify-run")
def notify_run(
    flow_run_id: Annotated[str, titled("Flow run id")],
    notify_block: Annotated[str, titled("Notification block")] = "",
    event: Annotated[str, titled("Event")] = "",
    why: Annotated[str, titled("Why")] = "",
) -> bool:
    """Send how the flow run `flow_run_id` ended (or what it waits for) through a block.

    It never fails.

    Args:
        flow_run_id: the ended run of release, rollback, delivery, backup, disaster-recovery
            or dr-drill: its id, or its event resource id `prefect.flow-run.<id>` (what the
            trigger passes).
        notify_block: "<block-type-slug>/<name>" of a notification block; empty: the run's own
            `notify_block` parameter, else the worker's KYB_NOTIFY_BLOCK.
        event: a kyb event to tell about instead of the run's end (`kyb.release.paused`).
        why: the event's reason (a paused release: what it waits for).

    Returns:
        True if the block accepted the notification.
    """
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(flow_run_id.rpartition(".")[2]))
        name = client.read_flow(run.flow_id).name
    kind, title, body = describe(name, run, run.state, event, why)
    return notify(kind, title, body, notify_block or block_reference(run.parameters or {}))
