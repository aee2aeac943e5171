"""The GitHub webhook receiver: a Starlette app that starts the delivery deployment per push."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from core.errors import ConfigError, TransientError
from deployments.webhook_github import (
    DELIVERY_ID,
    BadPayload,
    ReplayGuard,
    body_digest,
    environment_for,
    parse_push,
    repository_allowed,
    run_parameters,
    signature_ok,
)
from deployments.webhook_runs import PrefectRunStarter, RunRequest, RunStarter
from deployments.webhook_server import server_config
from deployments.webhook_settings import WebhookSettings, load_settings

log = logging.getLogger("kyb.webhook")
PATH = "/webhooks/github"
EVENT_NAME = re.compile(r"^[a-z_]{1,40}$")  # GitHub's event names; others are not logged as sent


class TooLarge(Exception):
    """The request body is over the size limit."""


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused when its declared or actual size is over `limit` bytes.

    The request body, refusing (before reading it) a declared or (while reading) an actual
    size over `limit` bytes.

    Raises:
        TooLarge: over the limit.
        ValueError: Content-Length is not a number.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise ValueError("Content-Length is not a number")
        if int(declared) > limit:
            raise TooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooLarge
    return bytes(body)


@dataclass
class Seen:
    """What one request revealed so far: its delivery id, the push it claimed, the branch."""

    delivery: str
    claimed: str = ""  # the body digest claimed in the replay guard
    branch: str = ""


def _answer(status: int, message: str, **extra: object) -> JSONResponse:
    return JSONResponse({"status": status, "message": message, **extra}, status_code=status)


def create_app(settings: WebhookSettings, starter: RunStarter | None = None) -> Starlette:
    """The receiver's ASGI app.

    uv run python -m deployments.webhook     # serves http://127.0.0.1:8090 (KYB_WEBHOOK_PORT)

    POST /webhooks/github checks, in this order, and nothing is started unless all pass:

        time        headers late: connection closed; body late                     408
        size        Content-Length or the body read so far > max_body_bytes        413
                    (before anything else: the request proves no secret yet)
        signature   X-Hub-Signature-256 missing, malformed or wrong                401
                    (HMAC-SHA256 of the body, hmac.compare_digest)
        event       X-GitHub-Event missing 400; `ping` 200 pong; not `push`        422
        delivery    X-GitHub-Delivery missing or not a GUID                        400
        payload     not JSON, no ref, no 40-hex `after`                            400
        repository  not allowed by the pushed branch's rule (its own repositories, 403
                    else settings.repositories; full name or clone/web URL); the
                    message names the branch. A tag or a branch without a rule:
                    refused only when neither a rule nor settings.repositories
                    allows the repository
        replay      the same signed body seen before by this process               409
                    (ReplayGuard on the body's SHA-256; new delivery ids do not
                    make it new)
        branch      a tag, a deleted branch or a branch without a rule             202 ignored
        run         flow run created (or event sent for a trigger)                 202 flow_run_id
                    Prefect API unreachable, failing or too slow                   503 redeliver
                    the API refused (no such deployment, bad parameters)           500

    A push is remembered only when its answer is 2xx (a failure, or an exception, releases it),
    so a redelivery after a 4xx/5xx is handled afresh; the run's idempotency key is the body's
    digest too, so even after a restart a replay starts no second run. GET /healthz answers 200.
    Logs carry the delivery id, event, branch and outcome; never the secret or the signature.

    Args:
        settings: secret, limits, branch rules and the deployment to start.
        starter: what starts runs (default: PrefectRunStarter on PREFECT_API_URL); tests of
            the HTTP answers pass a fake.

    Returns:
        The Starlette app; `app.state.replays` is its ReplayGuard.
    """
    runs = starter or PrefectRunStarter(settings.start_runs, settings.api_timeout_seconds)
    replays = ReplayGuard(settings.replay_window)

    async def github(request: Request) -> JSONResponse:
        seen = Seen(request.headers.get("x-github-delivery", ""))
        event = request.headers.get("x-github-event", "")
        response = None
        try:
            response = await _handle(request, event, seen)
        finally:  # failed, refused or crashed: let GitHub's redelivery of this push in
            if seen.claimed and (response is None or response.status_code >= 300):
                replays.release(seen.claimed)
        delivery = seen.delivery if DELIVERY_ID.match(seen.delivery) else "<invalid>"
        shown = event if EVENT_NAME.match(event) else "<invalid>" if event else "<none>"
        log.info(
            "delivery=%s event=%s branch=%s -> %s",
            delivery,
            shown,
            seen.branch or "-",
            response.status_code,
        )
        return response

    async def _handle(request: Request, event: str, seen: Seen) -> JSONResponse:
        delivery = seen.delivery
        try:
            async with asyncio.timeout(settings.body_timeout_seconds):
                body = await read_body(request, settings.max_body_bytes)
        except TimeoutError:
            return _answer(408, f"body not received within {settings.body_timeout_seconds:g}s")
        except TooLarge:
            return _answer(413, f"body over {settings.max_body_bytes} bytes")
        except ValueError as exc:
            return _answer(400, str(exc))
        if not signature_ok(settings.secret, body, request.headers.get("x-hub-signature-256")):
            return _answer(401, "missing or invalid X-Hub-Signature-256")
        if not event:
            return _answer(400, "missing X-GitHub-Event")
        if event == "ping":
            return _answer(200, "pong")
        if event != "push":
            return _answer(422, f"event {event[:40]!r} is not handled: only push (and ping)")
        if not DELIVERY_ID.match(delivery):
            return _answer(400, "missing or malformed X-GitHub-Delivery")
        try:
            push = parse_push(body)
        except BadPayload as exc:
            return _answer(400, str(exc), delivery=delivery)
        seen.branch = push.branch or push.ref
        if not repository_allowed(push, settings.allowed_repositories(push.branch)):
            shown = push.repository[:100] or push.clone_url[:100] or "an unnamed repository"
            where = f"branch {push.branch[:100]}" if push.branch in settings.branches else "here"
            return _answer(403, f"pushes from {shown} may not deploy {where}", delivery=delivery)
        digest = body_digest(body)
        if not replays.claim(digest):
            return _answer(409, "push already received: nothing started", delivery=delivery)
        seen.claimed = digest
        environment, reason = environment_for(push, settings.branches)
        if environment is None:
            return _answer(202, f"ignored: {reason}", delivery=delivery)
        params = {
            **settings.parameters,
            **run_parameters(push, environment, settings.image_repository, settings.git_block),
        }
        try:
            request = RunRequest(
                delivery, settings.deployment, params, digest, tuple(settings.parameters)
            )
            started = await runs.start(request)
        except TransientError as exc:
            log.warning("delivery=%s: Prefect unavailable: %s", delivery, exc)
            return _answer(503, "Prefect is unavailable: redeliver later", delivery=delivery)
        except ConfigError as exc:  # details stay in the receiver's log
            log.error("delivery=%s: run refused: %s", delivery, exc)
            return _answer(500, "the run was refused: see the receiver's log", delivery=delivery)
        return _answer(
            202,
            reason,
            delivery=delivery,
            environment=environment,
            flow_run_id=started.flow_run_id,
            event_id=started.event_id,
        )

    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await runs.aclose()

    app = Starlette(
        routes=[Route(PATH, github, methods=["POST"]), Route("/healthz", healthz, methods=["GET"])],
        lifespan=lifespan,
    )
    app.state.replays = replays
    return app


def main() -> None:
    """Serve the receiver with uvicorn, settings from KYB_WEBHOOK_* (see load_settings).

    Raises:
        ConfigError: PREFECT_API_URL is not set (the receiver never starts a throwaway server).
    """
    import uvicorn
    from prefect.settings import get_current_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if not get_current_settings().api.url:
        raise ConfigError("set PREFECT_API_URL to the Prefect server the runs go to")
    settings = load_settings()
    uvicorn.Server(server_config(create_app(settings), settings, log_level="info")).run()


if __name__ == "__main__":
    main()
