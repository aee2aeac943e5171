"""Starting the delivery for a verified push: a flow run through the API, or only an event."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import NAMESPACE_URL, UUID, uuid5

import httpx

from core.errors import ConfigError, TransientError

EVENT = "kyb.webhook.push"
PARAMETERS = (
    "commit",
    "branch",
    "environment",
    "tagged_image",
    "repository",
    "source",
    "commit_time",
    "pushed_by",
    "git_block",
)
#: Push parameters that name a saved block, and the flow parameter (typed by that block's kind)
#: the run gets them as: the reference the UI's block selector would send.
BLOCK_PARAMETERS = {
    "environment": ("environment", "kyb-environment"),
    "git_block": ("git", "kyb-git-repository"),
}
log = logging.getLogger("kyb.webhook")


def _ref(slug: str, name: str) -> dict[str, Any]:
    return {"$ref": {"block_document_slug": f"{slug}/{name}"}}


def flow_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """A push's parameters as the delivery flow takes them: block names become references.

    An empty block name (no git repository: the worker's checkout) is left out.
    """
    out = {k: v for k, v in parameters.items() if k not in BLOCK_PARAMETERS}
    for name, (parameter, slug) in BLOCK_PARAMETERS.items():
        if parameters.get(name):
            out[parameter] = _ref(slug, parameters[name])
    return out


@dataclass(frozen=True)
class RunRequest:
    """One verified push to start: the deployment, its parameters, the GitHub delivery id."""

    delivery: str
    deployment: str  # "<flow>/<deployment>"
    parameters: dict[str, Any]
    digest: str = ""  # SHA-256 of the signed body (webhook_github.body_digest)
    fixed: tuple[
        str, ...
    ] = ()  # names set by the receiver's settings: the deployment must take them

    @property
    def idempotency_key(self) -> str:
        """Prefect returns the existing run for a key it has seen: one run per signed push.

        Keyed on the signed body, not on the unsigned delivery id: a replay under new ids is
        the same push.
        """
        return f"github-push-{self.digest or self.delivery}"

    @property
    def event_id(self) -> UUID | None:
        """The push event's id, derived from the signed body like the idempotency key.

        A replay (under a new delivery id, or after the receiver restarted) sends the same event
        id, which the server's triggers service has seen (it remembers ids for 30 minutes), so a
        deployment trigger starts no second run either. None without a digest: a random id.
        """
        return uuid5(NAMESPACE_URL, f"kyb:github-push:{self.digest}") if self.digest else None

    @property
    def run_name(self) -> str:
        """The flow run's name, e.g. github-staging-1a2b3c4-<delivery id>."""
        short = self.parameters["commit"][:7]
        return f"github-{self.parameters['environment']}-{short}-{self.delivery}"


@dataclass(frozen=True)
class StartedRun:
    """What was started: the flow run (None when a trigger starts it) and the event sent."""

    flow_run_id: str | None
    event_id: str | None


class RunStarter(Protocol):
    """Starts a run for a verified push (PrefectRunStarter; tests inject a fake)."""

    async def start(self, request: RunRequest) -> StartedRun:
        """Start it.

        Raises:
            TransientError: the Prefect API is unreachable or failing (the receiver answers 503).
            ConfigError: the API refused the request, e.g. no such deployment (500).
        """
        ...

    async def aclose(self) -> None:
        """Release connections (called when the app shuts down)."""
        ...


class PrefectRunStarter:
    """Creates flow runs through the Prefect API in PREFECT_API_URL and emits the push event.

    Starting the delivery deployment for a verified push: a flow run through the Prefect API, plus
    a `kyb.webhook.push` event, or only the event for a deployment trigger (push_trigger) to act on.

    Two ways (push_trigger matches only trigger-mode events, so the two never both start a run):
    - API (WebhookSettings.start_runs=True, the default): the receiver creates the flow run itself,
      with the delivery id as idempotency key, and answers 202 with the run's id. An unreachable API
      is a 503: GitHub records the delivery as failed (it does not retry on its own) and a
      redelivery, by hand or by a script through GitHub's API, carries the same delivery id, so it
      is accepted and still starts at most one run. The event is emitted afterwards, labelled
      `kyb.started-by: receiver`, for the record.
    - Trigger (start_runs=False): the receiver only emits the event, labelled
      `kyb.started-by: trigger`, and the deployment's `push_trigger()` automation starts the run
      with the parameters from the event's payload. Events are sent in the background, so a lost
      event is not reported to GitHub.

    Only the parameters the deployment's schema declares are sent (a flow given a parameter it does
    not take would fail); the event's payload carries them all.
    """

    def __init__(
        self, start_runs: bool = True, timeout: float = 8.0, api_url: str | None = None
    ) -> None:
        """Args: start_runs and timeout as WebhookSettings; api_url overrides PREFECT_API_URL."""
        self.start_runs = start_runs
        self.timeout = timeout
        self.api_url = api_url
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deployments: dict[str, tuple[UUID, frozenset[str] | None]] = {}

    async def _api(self) -> Any:
        """The API client of the running event loop (a client cannot move between loops)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            from prefect.client.orchestration import get_client
            from prefect.settings import PREFECT_API_URL, temporary_settings

            override = {PREFECT_API_URL: self.api_url} if self.api_url else {}
            with temporary_settings(override):
                client = get_client(httpx_settings={"timeout": self.timeout})
            await client.__aenter__()
            self._client, self._loop = client, loop
        return self._client

    async def aclose(self) -> None:
        """Close the API client."""
        client, self._client = self._client, None
        if client is not None:
            await client.__aexit__(None, None, None)

    async def start(self, request: RunRequest) -> StartedRun:
        """Create the flow run (API mode), then emit the push event. See RunStarter.start."""
        run_id = None
        if self.start_runs:
            try:
                async with asyncio.timeout(self.timeout):
                    run_id = str(await self._create(request))
            except TimeoutError as exc:
                raise TransientError(
                    f"the Prefect API did not answer in {self.timeout:g} s",
                    deployment=request.deployment,
                ) from exc
        event_id = _emit(request, run_id)
        if event_id is None and not self.start_runs:
            raise TransientError("events cannot be sent: is PREFECT_API_URL set?")
        return StartedRun(flow_run_id=run_id, event_id=event_id)

    async def _create(self, request: RunRequest) -> UUID:
        from prefect.exceptions import ObjectNotFound

        client = await self._api()
        for attempt in (1, 2):  # a cached deployment id may be stale (deployment re-created)
            try:
                wanted = flow_parameters(request.parameters)
                known = self._deployments.get(request.deployment)
                if known is None:
                    deployment = await client.read_deployment_by_name(request.deployment)
                    names = declared(deployment.parameter_openapi_schema)
                    known = self._deployments[request.deployment] = (deployment.id, names)
                    if names is not None and (extra := set(wanted) - names):
                        log.info("%s takes no %s: not sent", request.deployment, sorted(extra))
                deployment_id, names = known
                if names is not None and (unknown := sorted(set(request.fixed) - names)):
                    raise ConfigError(
                        f"KYB_WEBHOOK_PARAMETERS sets {unknown}, which the deployment does not "
                        "take: remove them or deploy a flow that takes them",
                        deployment=request.deployment,
                    )
                params = {k: v for k, v in wanted.items() if names is None or k in names}
                run = await client.create_flow_run_from_deployment(
                    deployment_id,
                    parameters=params,
                    name=request.run_name,
                    idempotency_key=request.idempotency_key,
                    tags=["github", f"env:{request.parameters['environment']}"],
                )
                return run.id
            except ObjectNotFound as exc:
                raise ConfigError("no such deployment", deployment=request.deployment) from exc
            except httpx.HTTPStatusError as exc:
                status = exc.response.status_code
                if status == 404 and attempt == 1:
                    self._deployments.pop(request.deployment, None)
                    continue
                if status >= 500 or status == 429:
                    raise TransientError(f"the Prefect API answered {status}") from exc
                raise ConfigError(
                    f"the Prefect API refused the run ({status}): {exc.response.text[:300]}",
                    deployment=request.deployment,
                ) from exc
            except httpx.TransportError as exc:
                raise TransientError(f"the Prefect API is unreachable: {exc!r}") from exc
        raise ConfigError("the deployment vanished", deployment=request.deployment)


def declared(schema: dict[str, Any] | None) -> frozenset[str] | None:
    """The parameter names a deployment's schema declares.

    None when it declares none at all (then every parameter is sent). A flow run given a parameter
    its flow lacks would fail.
    """
    properties = (schema or {}).get("properties")
    return frozenset(properties) if isinstance(properties, dict) else None


def _emit(request: RunRequest, run_id: str | None) -> str | None:
    """Send the push event in the background; its id, or None when events are not sent."""
    from prefect.events import emit_event

    p = request.parameters
    related = []
    if run_id:
        related = [
            {
                "prefect.resource.id": f"prefect.flow-run.{run_id}",
                "prefect.resource.role": "flow-run",
            }
        ]
    event = emit_event(
        event=EVENT,
        resource={
            "prefect.resource.id": f"kyb.github.delivery.{request.delivery}",
            "kyb.delivery-id": request.delivery,
            "kyb.commit": p["commit"],
            "kyb.branch": p["branch"],
            "kyb.environment": p["environment"],
            "kyb.deployment": request.deployment,
            "kyb.started-by": "receiver" if run_id else "trigger",
        },
        related=related,
        payload=dict(p),
        id=request.event_id,
    )
    return str(event.id) if event else None


def push_trigger(
    deployment: str = "delivery/delivery", names: Iterable[str] = PARAMETERS, git: bool = False
) -> Any:
    """A deployment trigger that starts `deployment` from the receiver's push events.

    A deployment trigger that starts `deployment` from the receiver's push events when it runs
    with start_runs=False, e.g. `delivery.to_deployment("delivery", triggers=[push_trigger()])`.

    Args:
        deployment: the deployment's "<flow>/<deployment>" name, as in WebhookSettings.
        names: the parameters to pass (those the flow takes), from the event's payload.
        git: the receiver names a git repository block (KYB_WEBHOOK_GIT_BLOCK): the run fetches
            the pushed commit from it.

    Returns:
        prefect.events.DeploymentEventTrigger with the push's parameters templated from the event
        (block names as block references, as flow_parameters sends them).
    """
    from prefect.events import DeploymentEventTrigger

    parameters: dict[str, Any] = {}
    for name in names:
        template = f"{{{{ event.payload.{name} }}}}"
        if name not in BLOCK_PARAMETERS:
            parameters[name] = template
        elif name != "git_block" or git:
            parameter, slug = BLOCK_PARAMETERS[name]
            parameters[parameter] = _ref(slug, template)
    return DeploymentEventTrigger(
        name=f"github-push-{deployment.replace('/', '-')}",
        expect={EVENT},
        match={"kyb.started-by": "trigger", "kyb.deployment": deployment},
        parameters=parameters,
    )
