"""Flow state hooks that notify on failure and rollback (plain calls: the run has ended)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from prefect.settings import PREFECT_UI_URL

from tasks.notify import ENV_BLOCK, MAX_REASON, PARAMETER, notify, notify_logger


def block_reference(parameters: Mapping[str, Any]) -> str | None:
    """The block to notify through: the run's `notify_block` parameter, else KYB_NOTIFY_BLOCK."""
    return str(parameters.get(PARAMETER) or "") or os.environ.get(ENV_BLOCK) or None


def run_url(flow_run: Any) -> str:
    """The flow run's page in the Prefect UI ("" when no UI URL is known)."""
    ui = (PREFECT_UI_URL.value() or "").rstrip("/")
    return f"{ui}/runs/flow-run/{flow_run.id}" if ui else ""


def reason_of(state: Any) -> str:
    """Why a run ended as it did.

    its exception (type and message) if known, else the state's message; cut to MAX_REASON
    characters.
    """
    reason = ""
    try:
        outcome = state.result(raise_on_failure=False)
    except Exception:  # no result in this process (crashed, or not persisted)
        outcome = None
    if isinstance(outcome, BaseException):
        reason = f"{type(outcome).__name__}: {outcome}"
    reason = reason or state.message or state.name or "unknown"
    return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 3] + "..."


def describe(flow_name: str, flow_run: Any, state: Any) -> tuple[str, str, str]:
    """The event, title and body of a notification about a finished release or rollback run."""
    params = flow_run.parameters or {}
    spec = params.get("spec") if isinstance(params.get("spec"), Mapping) else params
    app = spec.get("app") or params.get("app") or "?"
    namespace = spec.get("namespace") or params.get("namespace") or "?"
    image = spec.get("image") or params.get("image") or _result_image(state) or "-"
    what = "rollback" if flow_name == "rollback" else flow_name
    if state.is_completed():
        event, happened = f"{what}-completed", "completed"
        if what == "rollback":
            event, happened = "rolled-back", "rolled back"
    elif _is_rolled_back(state):
        event, happened = f"{what}-rolled-back", "failed and was rolled back automatically"
    else:
        event, happened = f"{what}-{state.type.value.lower()}", state.type.value.lower()
    title = f"{what} of {app} in {namespace}: {happened}"
    lines = [title, "", f"app: {app}", f"namespace: {namespace}", f"image: {image}"]
    if not state.is_completed():
        lines.append(f"reason: {reason_of(state)}")
    elif summary := _result_summary(state):
        lines.append(f"summary: {summary}")
    lines.append(f"flow run: {flow_run.name} {run_url(flow_run)}".rstrip())
    return event, title, "\n".join(lines)


def _is_rolled_back(state: Any) -> bool:
    """True if the run failed with ReleaseFailed: the release was rolled back automatically."""
    return "ReleaseFailed" in reason_of(state)


def _result(state: Any) -> Mapping[str, Any]:
    try:
        value = state.result(raise_on_failure=False)
    except Exception:
        return {}
    return value if isinstance(value, Mapping) else {}


def _result_image(state: Any) -> str:
    return str(_result(state).get("image") or "")


def _result_summary(state: Any) -> str:
    return str(_result(state).get("summary") or "")[:MAX_REASON]


def _send(flow: Any, flow_run: Any, state: Any) -> None:
    try:
        event, title, body = describe(flow.name, flow_run, state)
    except Exception as exc:  # a hook must never raise
        notify_logger().warning(
            "notification not built for flow run %s: %s", flow_run.id, type(exc).__name__
        )
        return
    notify.fn(event, title, body, block_reference(flow_run.parameters or {}))


def on_release_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """State hook for `on_failure`/`on_crashed` of the release (and rollback) flows.

    Sends "release of <app> in <namespace>: failed and was rolled back automatically" (the
    ReleaseFailed message as the reason), or "...: failed"/"crashed" with the exception.
    """
    _send(flow, flow_run, state)


def on_rollback(flow: Any, flow_run: Any, state: Any) -> None:
    """State hook for `on_completion` (and `on_failure`) of the manual rollback flow.

    Sends "rollback of <app> in <namespace>: rolled back" with the revision summary, or the
    failure reason when the rollback itself failed.
    """
    _send(flow, flow_run, state)


def on_backup_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """State hook for `on_failure`/`on_crashed` of the backup, disaster-recovery and drill flows.

    Sends "<flow> of <namespaces>: failed" with the reason (Velero's errors for a backup).
    """
    try:
        params = flow_run.parameters or {}
        scope = ", ".join(params.get("namespaces") or []) or "the default namespaces"
        happened = state.type.value.lower()
        title = f"{flow.name} of {scope}: {happened}"
        body = "\n".join(
            [
                title,
                "",
                f"reason: {reason_of(state)}",
                f"flow run: {flow_run.name} {run_url(flow_run)}".rstrip(),
            ]
        )
    except Exception as exc:  # a hook must never raise
        notify_logger().warning(
            "notification not built for flow run %s: %s", flow_run.id, type(exc).__name__
        )
        return
    notify.fn(f"{flow.name}-{happened}", title, body, block_reference(flow_run.parameters or {}))
