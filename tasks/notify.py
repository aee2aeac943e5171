"""Notifications through a Prefect notification block, and the flow state hooks that send them.

The block is named as "<block-type-slug>/<block-name>", e.g. `custom-webhook/ops` or
`slack-webhook/releases`, from the flow run's `notify_block` parameter if it has one, else from
the KYB_NOTIFY_BLOCK environment variable. Nothing here ever raises: a notification that cannot
be sent is a logged warning, never a changed or hidden release outcome. Messages carry names,
images, reasons and links, never a secret; warnings name the block and the kind of fault, never
the block's URL or an exception text that could quote it.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

import httpx
from prefect import get_run_logger
from prefect.blocks.abstract import NotificationBlock
from prefect.blocks.core import Block
from prefect.exceptions import MissingContextError
from prefect.settings import PREFECT_UI_URL
from prefect.utilities.asyncutils import run_coro_as_sync

from core.errors import ConfigError

ENV_BLOCK = "KYB_NOTIFY_BLOCK"
PARAMETER = "notify_block"
MAX_REASON = 1000  # characters of the failure reason a message carries
_SENDING: ContextVar[bool] = ContextVar("kyb_notify_sending", default=False)


class _HideWebhookUrl(logging.Filter):
    """Cut the URL in httpx's request log lines to its host while a notification is sent: a
    webhook URL often carries its token (Slack's path, a `?token=` query)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _SENDING.get() and isinstance(record.args, tuple):
            record.args = tuple(
                f"{a.scheme}://{a.netloc.decode()}/[hidden]" if isinstance(a, httpx.URL) else a
                for a in record.args
            )
        return True


logging.getLogger("httpx").addFilter(_HideWebhookUrl())


def _logger() -> logging.Logger | logging.LoggerAdapter:
    """The run logger inside a flow run (the warning shows in the UI), else this module's."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


def load_block(reference: str) -> NotificationBlock:
    """The notification block saved as `reference` ("<block-type-slug>/<block-name>").

    Raises:
        ConfigError: the reference is malformed, no such block is saved, or the block cannot
            send notifications.
    """
    slug, _, name = reference.partition("/")
    if not slug or not name or "/" in name:
        raise ConfigError(f"notification block {reference!r} is not '<block-type-slug>/<name>': "
                          "use e.g. custom-webhook/ops or slack-webhook/releases")  # fmt: skip
    try:
        block = Block.load(reference, _sync=True)  # sync even when a hook runs in a loop
    except Exception as exc:  # ValueError for a missing document, httpx errors for the API
        raise ConfigError(f"no notification block {reference!r} could be loaded "
                          f"({type(exc).__name__}): save it under Blocks in the Prefect UI or "
                          f"fix {ENV_BLOCK}") from None  # fmt: skip
    if not isinstance(block, NotificationBlock):
        raise ConfigError(f"block {reference!r} is a {type(block).__name__}, which cannot send "
                          "notifications: name a notification block")  # fmt: skip
    return block


def _fault(exc: BaseException) -> str:
    """What went wrong sending, without quoting the URL (a webhook URL often holds its token)."""
    if isinstance(exc, httpx.HTTPStatusError):
        return f"the endpoint answered HTTP {exc.response.status_code}"
    if isinstance(exc, httpx.TimeoutException):
        return "the endpoint did not answer in time"
    if isinstance(exc, httpx.TransportError):
        return f"the endpoint could not be reached ({type(exc).__name__})"
    return type(exc).__name__


def notify(event: str, title: str, body: str, block_name: str | None) -> bool:
    """Send one notification through a saved notification block; never raises.

    Args:
        event: what happened, for the log (e.g. "release-rolled-back").
        title: the subject line.
        body: the message; it must hold no secret (callers pass names, images, reasons, links).
        block_name: "<block-type-slug>/<name>" of the block; None or "" sends nothing.

    Returns:
        True if the block accepted the notification.
    """
    log = _logger()
    if not block_name:
        log.info("no notification block configured (set %s): %s not sent", ENV_BLOCK, event)
        return False
    try:
        block = load_block(block_name)
    except ConfigError as exc:
        log.warning("notification %s not sent: %s", event, exc)
        return False
    sending = _SENDING.set(True)
    try:
        sent = block.notify(body, subject=title)
        if inspect.isawaitable(sent):  # an async-only block, or called from an event loop
            run_coro_as_sync(sent)
    except Exception as exc:  # never fail or hide the run's own outcome
        log.warning("notification %s not sent through block %r: %s", event, block_name,
                    _fault(exc))  # fmt: skip
        return False
    finally:
        _SENDING.reset(sending)
    log.info("notification %s sent through block %r", event, block_name)
    return True


def block_reference(parameters: Mapping[str, Any]) -> str | None:
    """The block to notify through: the run's `notify_block` parameter, else KYB_NOTIFY_BLOCK."""
    return str(parameters.get(PARAMETER) or "") or os.environ.get(ENV_BLOCK) or None


def run_url(flow_run: Any) -> str:
    """The flow run's page in the Prefect UI ("" when no UI URL is known)."""
    ui = (PREFECT_UI_URL.value() or "").rstrip("/")
    return f"{ui}/runs/flow-run/{flow_run.id}" if ui else ""


def reason_of(state: Any) -> str:
    """Why a run ended as it did: its exception (type and message) if known, else the state's
    message; cut to MAX_REASON characters."""
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
        _logger().warning("notification not built for flow run %s: %s", flow_run.id,
                          type(exc).__name__)  # fmt: skip
        return
    notify(event, title, body, block_reference(flow_run.parameters or {}))


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
        body = "\n".join([title, "", f"reason: {reason_of(state)}",
                          f"flow run: {flow_run.name} {run_url(flow_run)}".rstrip()])  # fmt: skip
    except Exception as exc:  # a hook must never raise
        _logger().warning("notification not built for flow run %s: %s", flow_run.id,
                          type(exc).__name__)  # fmt: skip
        return
    notify(f"{flow.name}-{happened}", title, body, block_reference(flow_run.parameters or {}))
