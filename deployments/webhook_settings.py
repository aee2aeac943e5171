"""Settings of the GitHub webhook receiver: the shared secret, limits, branch map, what to start."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from core.delivery.branches import BRANCH_ENVIRONMENTS, BranchRule, parse_branch_map
from core.errors import ConfigError
from deployments.webhook_github import repository_key
from deployments.webhook_runs import PARAMETERS

DEFAULT_PORT = 8090
SECRET_BLOCK = "kyb-webhook-secret"
URL_EXAMPLE = "https://github.com/acme/kyb-platform.git"


def _default_rules() -> dict[str, BranchRule]:
    return {b: BranchRule(b, envs) for b, envs in BRANCH_ENVIRONMENTS.items()}


class WebhookSettings(BaseModel):
    """What the receiver verifies, accepts and starts.

    Attributes:
        secret: the webhook's shared secret (the same text as in GitHub's webhook settings).
        repositories: the repositories whose pushes may deploy, each as GitHub's full name
            (acme/kyb-platform) or a clone/web URL, for every branch rule that names none of its
            own; a correctly signed push from any other repository is refused (403). Every rule
            needs repositories from here or its own: a shared secret is often reused across repos.
        host: the address uvicorn binds (loopback by default).
        port: the port uvicorn binds.
        max_body_bytes: larger requests get 413 before their signature is even checked.
        branches: branch name -> its rule: the environments it deploys to, in order (the
            delivery's own map by default), and the repositories allowed to trigger it (its own
            list replaces `repositories` for that branch); pushes to other branches are ignored
            (202).
        deployment: the deployment started per push, as "<flow>/<deployment>".
        image_repository: registry/repository of the application image; the run's
            `tagged_image` parameter is this plus the commit's tag (the digest only exists
            after the build).
        replay_window: how many pushes (by the digest of their signed body) this process
            remembers to refuse replays early; Prefect's idempotency key, the same digest, keeps
            a replay from starting a second run after a restart too.
        start_runs: True: the receiver creates the flow run through the Prefect API. False: it
            only emits the `kyb.webhook.push` event and a deployment trigger starts the run
            (deployments.webhook_runs.push_trigger).
        api_timeout_seconds: time allowed for the Prefect API per request (GitHub waits 10 s).
        header_timeout_seconds: a request's headers must be complete this long after the
            connection opened (or the last response); else the connection is closed.
        body_timeout_seconds: the body must be complete this long after the headers; else 408.
        max_connections: connections served at once; more get 503 (uvicorn's limit).
        shutdown_seconds: on SIGTERM, requests in flight get this long, then the process ends.
        tls_certfile, tls_keyfile: serve HTTPS with this certificate (PEM) and key.
        git_block: the KYB Git Repository block the delivery fetches the pushed commit from;
            empty: the worker's own checkout is built.
        parameters: further parameters every run gets (e.g. production_strategy, templates);
            the ones a push decides (commit, branch, ...) cannot be set here. Runs the receiver
            starts only: with start_runs False the trigger's template decides the parameters.
    """

    model_config = ConfigDict(frozen=True)

    secret: SecretStr
    repositories: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, gt=0, lt=65536)
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    branches: dict[str, BranchRule] = Field(default_factory=_default_rules)
    deployment: str = Field(default="delivery/delivery", pattern=r"^[^/]+/[^/]+$")
    image_repository: str = "127.0.0.1:5001/kyb-platform"
    replay_window: int = Field(default=10_000, gt=0)
    start_runs: bool = True
    api_timeout_seconds: float = Field(default=8.0, gt=0)
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    body_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    max_connections: int = Field(default=64, gt=0)
    shutdown_seconds: int = Field(default=10, ge=0, le=300)
    tls_certfile: str = ""
    tls_keyfile: str = ""
    git_block: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _parameters_fixed(self) -> WebhookSettings:
        taken = sorted(set(self.parameters) & set(PARAMETERS))
        if taken:
            raise ValueError(
                f"parameters {taken}: these come from each push; leave them out of "
                "KYB_WEBHOOK_PARAMETERS"
            )
        if self.parameters and not self.start_runs:
            raise ValueError(
                "parameters are set but KYB_WEBHOOK_START_RUNS is false: the trigger starts the "
                "runs, so set them on the deployment instead (or let the receiver start runs)"
            )
        return self

    @model_validator(mode="after")
    def _tls_pair(self) -> WebhookSettings:
        if bool(self.tls_certfile) != bool(self.tls_keyfile):
            raise ValueError("tls_certfile / tls_keyfile: set both (HTTPS) or neither (HTTP)")
        for field in ("tls_certfile", "tls_keyfile"):
            path = getattr(self, field)
            if path and not os.path.isfile(path):
                raise ValueError(f"{field} {path!r} is not a file")
        return self

    @field_validator("repositories")
    @classmethod
    def _repositories_named(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [r for r in value if not repository_key(r)]
        if bad:
            raise ValueError(
                f"repositories {bad!r}: give owner/name or a clone URL such as {URL_EXAMPLE}"
            )
        return value

    @model_validator(mode="after")
    def _rules_complete(self) -> WebhookSettings:
        problems = []
        for key, rule in self.branches.items():
            if rule.branch != key:
                problems.append(f"branch {key!r}: its rule is for branch {rule.branch!r}")
            if not rule.environments or not all(rule.environments):
                problems.append(f"branch {key!r}: name the environments it deploys to")
            bad = [r for r in rule.repositories if not repository_key(r)]
            if bad:
                problems.append(
                    f"branch {key!r}: repositories {bad!r}: give owner/name or a clone URL such "
                    f"as {URL_EXAMPLE}"
                )
            if not (rule.repositories or self.repositories):
                example = f"{key}={'>'.join(rule.environments) or 'staging'}@acme/kyb-platform"
                problems.append(
                    f"branch {key!r} has no repositories allowed to trigger it: set "
                    f"KYB_WEBHOOK_REPOSITORIES (for every branch) or name them in its rule in "
                    f"KYB_WEBHOOK_BRANCHES ({example})"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def allowed_repositories(self, branch: str | None) -> tuple[str, ...]:
        """The repositories whose pushes to `branch` may deploy: its rule's own, else the default.

        For a branch without a rule, or a tag (None): every repository allowed anywhere, so a
        push from a stranger is refused there too while an allowed one is ignored (202).
        """
        rule = self.branches.get(branch) if branch is not None else None
        if rule is not None:
            return rule.repositories or self.repositories
        everywhere = (
            *self.repositories,
            *(r for x in self.branches.values() for r in x.repositories),
        )
        return tuple(dict.fromkeys(everywhere))

    @field_validator("secret")
    @classmethod
    def _secret_not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("the webhook secret is empty: set the one configured in GitHub")
        return value


def load_settings(environ: Mapping[str, str] | None = None) -> WebhookSettings:
    """Settings from KYB_WEBHOOK_* variables.

    the secret from KYB_WEBHOOK_SECRET (local use) or else from the Prefect Secret block named by
    KYB_WEBHOOK_SECRET_BLOCK (kyb-webhook-secret).

    Who may deploy where (every branch rule needs repositories from one of the two):

    - KYB_WEBHOOK_REPOSITORIES: "acme/kyb-platform,https://github.com/acme/other.git", the
      repositories (full name or clone/web URL) allowed for every branch whose rule names none.
    - KYB_WEBHOOK_BRANCHES: the branch rules, comma-separated, each
      branch=environment[>environment...][@repository[|repository...]]; default
      "develop=staging,main=staging>production". A rule's own repositories replace
      KYB_WEBHOOK_REPOSITORIES for that branch (whitespace around entries is ignored, so the
      value may span lines). E.g. main only from acme/kyb-platform, develop also from a fork
      trusted for staging:
      "main=staging>production@acme/kyb-platform,
      develop=staging@acme/kyb-platform|https://github.com/acme/kyb-platform-sandbox.git".

    Other variables: KYB_WEBHOOK_HOST, KYB_WEBHOOK_PORT, KYB_WEBHOOK_MAX_BODY_BYTES,
    KYB_WEBHOOK_DEPLOYMENT, KYB_WEBHOOK_IMAGE_REPOSITORY, KYB_WEBHOOK_REPLAY_WINDOW,
    KYB_WEBHOOK_START_RUNS (true/false),
    KYB_WEBHOOK_HEADER_TIMEOUT_SECONDS, KYB_WEBHOOK_BODY_TIMEOUT_SECONDS,
    KYB_WEBHOOK_MAX_CONNECTIONS, KYB_WEBHOOK_SHUTDOWN_SECONDS, KYB_WEBHOOK_TLS_CERTFILE and
    KYB_WEBHOOK_TLS_KEYFILE, KYB_WEBHOOK_GIT_BLOCK, KYB_WEBHOOK_PARAMETERS (a JSON object:
    '{"production_strategy": {"canary": {"steps": [{"setWeight": 20}]}}}').

    Raises:
        ConfigError: the secret block cannot be loaded or does not hold text, or
            KYB_WEBHOOK_BRANCHES has an entry that is not a rule (the message names it).
        pydantic.ValidationError: a value is invalid, e.g. a branch rule with no repositories
            (its own or KYB_WEBHOOK_REPOSITORIES) or an entry that names no owner/name (the
            message names the branch and the entry, never the secret).
    """
    env = os.environ if environ is None else environ
    fields = (
        "host",
        "port",
        "max_body_bytes",
        "deployment",
        "image_repository",
        "replay_window",
        "start_runs",
        "header_timeout_seconds",
        "body_timeout_seconds",
        "max_connections",
        "shutdown_seconds",
        "tls_certfile",
        "tls_keyfile",
        "git_block",
    )
    names = {field: f"KYB_WEBHOOK_{field.upper()}" for field in fields}
    values: dict[str, object] = {field: env[var] for field, var in names.items() if var in env}
    if "KYB_WEBHOOK_REPOSITORIES" in env:
        values["repositories"] = tuple(
            r.strip() for r in env["KYB_WEBHOOK_REPOSITORIES"].split(",") if r.strip()
        )
    if "KYB_WEBHOOK_PARAMETERS" in env:
        values["parameters"] = _json_object("KYB_WEBHOOK_PARAMETERS", env["KYB_WEBHOOK_PARAMETERS"])
    if "KYB_WEBHOOK_BRANCHES" in env:
        values["branches"] = parse_branch_map(env["KYB_WEBHOOK_BRANCHES"])
    secret = env.get("KYB_WEBHOOK_SECRET") or _block_secret(
        env.get("KYB_WEBHOOK_SECRET_BLOCK", SECRET_BLOCK)
    )
    return WebhookSettings(secret=SecretStr(secret), **values)


def _json_object(variable: str, text: str) -> dict[str, Any]:
    """A JSON object from an environment variable, or a ConfigError that names the variable."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{variable} is not JSON: {exc.msg} at character {exc.pos}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{variable} must be a JSON object of parameter names to values")
    return value


def _block_secret(name: str) -> str:
    """The text held by a Prefect Secret block (needs the Prefect API)."""
    from prefect.blocks.system import Secret

    try:
        value = Secret.load(name).get()
    except ValueError as exc:  # Prefect's "Unable to find block document named ..."
        raise ConfigError(
            "no webhook secret: save a Secret block or set KYB_WEBHOOK_SECRET", block=name
        ) from exc
    if not isinstance(value, str):
        raise ConfigError("the webhook secret block must hold text", block=name)
    return value
