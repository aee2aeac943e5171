"""Environment block: where a release goes (cluster, namespace, overlay) and how it is guarded."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from prefect.blocks.core import Block
from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from blocks.cluster import KubernetesCluster
from blocks.endpoint import ServiceEndpoint, base_url
from blocks.prometheus import PrometheusServer
from core.delivery.reach import CheckAccess
from core.errors import ConfigError
from core.names import is_dns_label, label_error
from core.release.spec import Strategy

APP = "{app}"  # the placeholder an overlay path or a strategy may use for the app's name


def _with_app(value: Any, app: str) -> Any:
    """`value` with every "{app}" in its strings replaced by `app` (dicts and lists walked)."""
    if isinstance(value, str):
        return value.replace(APP, app)
    if isinstance(value, dict):
        return {k: _with_app(v, app) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_app(v, app) for v in value]
    return value


class Environment(Block):
    """An environment a release names: its cluster (own credentials), namespace and rules."""

    model_config = ConfigDict(hide_input_in_errors=True)  # the nested blocks hold secrets

    _block_type_name = "KYB Environment"
    _block_type_slug = "kyb-environment"
    _logo_url = "https://cdn.sanity.io/images/3ugk85nk/production/2d0b896006ad463b49c28aaac14f31e00e32cfab-250x250.png"
    _documentation_url = "https://kubectl.docs.kubernetes.io/references/kustomize/"
    _description = (
        "A deployment environment (dev, staging, production): its cluster block with its own "
        "credentials, namespace, kustomize overlay, default strategy, approval rule, analysis "
        "templates and how checks reach its Services."
    )
    _code_example = """
    ```python
    from blocks import Environment

    staging = Environment.load("BLOCK_NAME")
    print(staging.namespace, staging.overlay_dir("kyb-platform"))
    endpoint = staging.endpoint("kyb-platform")  # where checks reach its Service
    ```
    """

    name: str = Field(description="The environment's name, e.g. staging.")
    cluster: KubernetesCluster = Field(
        description="The cluster block, with credentials for this environment only."
    )
    namespace: str = Field(description="The namespace releases go to, e.g. kyb-staging.")
    overlay: str = Field(
        default="",
        description="The kustomize overlay, relative to the checkout; '{app}' stands for the "
        "app's name, e.g. apps/{app}/deploy/staging. Empty: <app dir>/deploy/<name>.",
    )
    strategy: dict[str, Any] | None = Field(
        default=None,
        description="The default strategy (Argo Rollouts' fields, '{app}' for the app), e.g. "
        '{"blueGreen": {"activeService": "{app}", "autoPromotionEnabled": false}}. '
        "Empty: the overlay's rolling update.",
    )
    engine: Literal["pipeline", "argo"] = Field(
        default="pipeline",
        description="Who performs releases here: pipeline (the flow itself) or argo (the "
        "cluster's Argo Rollouts controller, which must run there; the flow writes a Rollout "
        "and follows it).",
    )
    approval_required: bool = Field(
        default=False, description="A person must approve before a release goes ahead."
    )
    analysis_templates: list[str] = Field(
        default_factory=lambda: ["error-rate"],
        description="The analysis templates a release here runs to watch the new version.",
    )
    prometheus: PrometheusServer | None = Field(
        default=None,
        description="The Prometheus its analyses and checks query; empty: the one the flow "
        "run is given.",
    )
    check_access: CheckAccess = Field(
        default=CheckAccess.SERVICE_PROXY,
        description="How checks reach the Service: service-proxy (through the apiserver, with "
        "the cluster block's credentials), url (check_url), or cluster-dns (name.ns.svc, when "
        "the pipeline runs in the cluster).",
    )
    check_url: str | None = Field(
        default=None, description="The Service's base URL, for check_access=url."
    )
    check_port: int = Field(
        default=80, ge=1, le=65535, description="The Service port checks call (not for url)."
    )

    @field_validator("name", "namespace")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if not is_dns_label(value):
            raise ValueError(label_error(value))
        return value

    @field_validator("overlay")
    @classmethod
    def _valid_overlay(cls, value: str) -> str:
        rest = value.replace(APP, "")
        if "{" in rest or "}" in rest:
            raise ValueError(f"overlay {value!r}: only {APP} may stand in braces, for the app")
        return value.strip()

    @field_validator("strategy")
    @classmethod
    def _valid_strategy(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        try:
            Strategy.model_validate(_with_app(value, "app"))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            why = first["msg"].removeprefix("Value error, ")
            raise ValueError(f"strategy {where}: {why}" if where else f"strategy: {why}") from None
        return value

    @field_validator("analysis_templates")
    @classmethod
    def _valid_templates(cls, value: list[str]) -> list[str]:
        bad = [name for name in value if not is_dns_label(name)]
        if bad:
            raise ValueError(f"analysis_templates: {label_error(bad[0])}")
        if len(set(value)) != len(value):
            raise ValueError("analysis_templates: name each template once")
        return value

    @model_validator(mode="after")
    def _check_url_matches_access(self) -> Environment:
        if self.check_access == CheckAccess.URL:
            if not self.check_url:
                raise ValueError("check_access is url: set check_url to the Service's base URL")
            try:
                self.check_url = base_url(self.check_url, "check_url")
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        elif self.check_url:
            raise ValueError(
                f"check_url is only used with check_access=url, not {self.check_access.value}: "
                "unset it or set check_access to url"
            )
        return self

    def overlay_dir(self, app: str, app_dir: Path | None = None) -> Path:
        """The kustomize overlay for `app`.

        Args:
            app: the app's name (replaces '{app}').
            app_dir: the app's folder; the default overlay is `<app_dir>/deploy/<name>`.

        Raises:
            ConfigError: no overlay is set and no app folder is given.
        """
        if self.overlay:
            return Path(self.overlay.replace(APP, app))
        if app_dir is None:
            raise ConfigError(
                f"environment {self.name!r} sets no overlay: set its overlay "
                "(e.g. apps/{app}/deploy/" + self.name + ") or give the app's folder"
            )
        return app_dir / "deploy" / self.name

    def strategy_for(self, app: str) -> dict[str, Any] | None:
        """The default strategy with '{app}' replaced by `app` (None: the overlay's rolling)."""
        return None if self.strategy is None else _with_app(self.strategy, app)

    def endpoint(self, service: str) -> ServiceEndpoint:
        """Where checks reach `service` in this environment, by its check_access.

        Raises:
            ConfigError: the service name is not valid.
        """
        if self.check_access == CheckAccess.URL:
            assert self.check_url is not None  # the validator requires it
            return ServiceEndpoint.from_url(self.check_url)
        if self.check_access == CheckAccess.CLUSTER_DNS:
            return ServiceEndpoint.cluster_dns(self.namespace, service, self.check_port)
        return ServiceEndpoint.service_proxy(self.cluster, self.namespace, service, self.check_port)
