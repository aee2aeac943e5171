"""What the release executor refuses before it touches the cluster: the nginx router."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from core.release.spec import ReleaseSpec
from flows.release.executor import preflight

ROUTED = {
    "stableService": "web-stable",
    "canaryService": "web-canary",
    "steps": [{"setWeight": 10}],
}


def _spec(routing: dict) -> ReleaseSpec:
    canary = {**ROUTED, "trafficRouting": routing}
    return ReleaseSpec.model_validate(
        {
            "app": "web",
            "namespace": "ns",
            "image": "127.0.0.1:5001/web@sha256:" + "1" * 64,
            "strategy": {"canary": canary},
        }
    )


def test_nginx_is_refused_with_the_router_that_works() -> None:
    with pytest.raises(ConfigError, match="argoproj-labs/gatewayAPI"):
        preflight(_spec({"nginx": {"stableIngress": "kyb"}}))


def test_the_gateway_api_router_passes() -> None:
    preflight(_spec({"plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "web"}}}))
