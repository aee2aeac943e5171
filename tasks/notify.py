"""The notification boundary: one message through a Prefect notification block, never raising."""

from __future__ import annotations

import inspect
import logging
from contextvars import ContextVar

import httpx
from prefect import get_run_logger, task
from prefect.blocks.abstract import NotificationBlock
from prefect.blocks.core import Block
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError
from prefect.utilities.asyncutils import run_coro_as_sync

from core.errors import ConfigError

ENV_BLOCK = "KYB_NOTIFY_BLOCK"
PARAMETER = "notify_block"
MAX_REASON = 1000  # characters of the failure reason a message carries
_SENDING: ContextVar[bool] = ContextVar("kyb_notify_sending", default=False)


class _HideWebhookUrl(logging.Filter):
    """Cut the URL in httpx's request log lines to its host while a notification is sent.

    a webhook URL often carries its token (Slack's path, a `?token=` query).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if _SENDING.get() and isinstance(record.args, tuple):
            record.args = tuple(
                f"{a.scheme}://{a.netloc.decode()}/[hidden]" if isinstance(a, httpx.URL) else a
                for a in record.args
            )
        return True


logging.getLogger("httpx").addFilter(_HideWebhookUrl())


def notify_logger() -> logging.Logger | logging.LoggerAdapter:
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
        raise ConfigError(
            f"notification block {reference!r} is not '<block-type-slug>/<name>': "
            "use e.g. custom-webhook/ops or slack-webhook/releases"
        )
    try:
        block = Block.load(reference, _sync=True)  # sync even when a hook runs in a loop
    except Exception as exc:  # ValueError for a missing document, httpx errors for the API
        raise ConfigError(
            f"no notification block {reference!r} could be loaded "
            f"({type(exc).__name__}): save it under Blocks in the Prefect UI or "
            f"fix {ENV_BLOCK}"
        ) from None
    if not isinstance(block, NotificationBlock):
        raise ConfigError(
            f"block {reference!r} is a {type(block).__name__}, which cannot send "
            "notifications: name a notification block"
        )
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


@task(name="notify", cache_policy=NO_CACHE)
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
    log = notify_logger()
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
        log.warning("notification %s not sent through block %r: %s", event, block_name, _fault(exc))
        return False
    finally:
        _SENDING.reset(sending)
    log.info("notification %s sent through block %r", event, block_name)
    return True
