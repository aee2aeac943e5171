"""What a flow run is given, dumped as Prefect dumps it, passes the server's parameter validation.

The server checks every run's parameters against the deployment's schema (camelCase, no extra
keys): a spec or template dumped by field name was refused with 409 ("'value_from' was
unexpected") when the demo pushed.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
import yaml
from prefect.utilities.callables import parameter_schema

from core.analysis.builtins import BUILTINS
from core.analysis.templates import rescheduled
from core.release.rollout import load_rollout
from flows.delivery import delivery
from flows.release.flow import release
from tests.unit.test_rollout_argo import FULL, IMAGE
from tests.unit.test_templates import ARGO


def _schema(flow: Any, parameter: str) -> dict[str, Any]:
    schema = parameter_schema(flow).model_dump()
    return {**schema["properties"][parameter], "definitions": schema.get("definitions", {})}


@pytest.mark.parametrize("flow", [release, delivery])
def test_templates_as_a_run_receives_them(flow: Any) -> None:
    from core.analysis.templates import AnalysisTemplate

    templates = [rescheduled(t, interval=2, count=4) for t in BUILTINS.values()]
    templates.append(AnalysisTemplate.model_validate(yaml.safe_load(ARGO)))
    dumped = [t.model_dump(mode="json") for t in templates]
    jsonschema.validate(dumped, _schema(flow, "templates"))
    assert [AnalysisTemplate.model_validate(d) for d in dumped] == templates


def test_a_rollouts_spec_as_a_run_receives_it() -> None:
    spec = load_rollout(FULL, image=IMAGE)
    dumped = spec.model_dump(mode="json", exclude_none=True)
    jsonschema.validate(dumped, _schema(release, "spec"))
    assert type(spec).model_validate(dumped) == spec
