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
from prefect.utilities.schema_tools.validation import validate

from core.analysis.builtins import BUILTINS
from core.analysis.templates import rescheduled
from core.release.rollout import load_rollout
from flows.backup import backup
from flows.delivery import delivery
from flows.disaster_recovery import disaster_recovery
from flows.dora import dora_report
from flows.dr_drill import dr_drill
from flows.release.flow import release
from flows.rollback import rollback
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


FLOWS = [release, delivery, rollback, backup, disaster_recovery, dr_drill, dora_report]


def _properties(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(where, name, property) of the form's fields and of every model it refers to."""
    found = [(schema["title"], k, v) for k, v in schema["properties"].items()]
    for where, definition in schema.get("definitions", {}).items():
        if "block_type_slug" in definition:
            continue  # a block: the form shows a selector of saved blocks, not its fields
        found += [(where, k, v) for k, v in definition.get("properties", {}).items()]
    return found


@pytest.mark.parametrize("flow", FLOWS, ids=lambda f: f.name)
def test_every_field_of_the_run_form_has_a_title_and_a_description(flow: Any) -> None:
    schema = parameter_schema(flow).model_dump()
    for where, name, prop in _properties(schema):
        title, text = prop.get("title") or "", prop.get("description") or ""
        assert title and text, f"{where}.{name}: title {title!r}, description {text!r}"
        assert "_" not in title and title[0].isupper(), f"{where}.{name}: title {title!r}"
        assert title.lower().replace(" ", "") != title.lower() or " " not in name, title


@pytest.mark.parametrize("flow", FLOWS, ids=lambda f: f.name)
def test_nothing_with_a_default_is_marked_required(flow: Any) -> None:
    schema = parameter_schema(flow).model_dump()
    models = {"": schema, **schema.get("definitions", {})}
    for where, model in models.items():
        for name in model.get("required", []):
            assert "default" not in model["properties"][name], f"{where}.{name}"
    spec = schema["definitions"].get("ReleaseSpec")
    if spec is not None:  # filled from the app by the model, so the form need not ask
        assert set(spec["required"]) == {"app", "namespace", "image", "strategy"}


@pytest.mark.parametrize(
    ("flow", "parameter", "slug"),
    [
        (release, "environment", "kyb-environment"),
        (release, "cluster", "kyb-kubernetes-cluster"),
        (release, "prometheus", "kyb-prometheus"),
        (rollback, "cluster", "kyb-kubernetes-cluster"),
        (delivery, "registry", "kyb-container-registry"),
        (delivery, "git", "kyb-git-repository"),
        (backup, "velero_install", "kyb-velero"),
        (dr_drill, "velero_install", "kyb-velero"),
        (disaster_recovery, "velero_install", "kyb-velero"),
    ],
)
def test_blocks_are_picked_from_a_list(flow: Any, parameter: str, slug: str) -> None:
    schema = parameter_schema(flow).model_dump()
    refs = [a["$ref"] for a in schema["properties"][parameter]["anyOf"] if "$ref" in a]
    [definition] = [schema["definitions"][r.rsplit("/", 1)[1]] for r in refs]
    assert definition["block_type_slug"] == slug  # the UI renders a block document selector
    # what the selector, a script or the receiver sends passes the server's validation
    ref = {parameter: {"$ref": {"block_document_slug": f"{slug}/x"}}}
    assert validate(ref, schema, preprocess=True, ignore_required=True) == []


def test_a_pause_duration_is_typed_as_text_and_5m_passes_validation() -> None:
    schema = parameter_schema(release).model_dump()
    pause = {"strategy": {"canary": {"steps": [{"pause": {"duration": "5m"}}]}}}
    spec = {"app": "web", "namespace": "ns", "image": IMAGE, **pause}
    assert validate({"spec": spec, "rollout": "kind: Rollout"}, schema, preprocess=True) == []
    spec["strategy"]["canary"]["steps"][0]["pause"]["duration"] = "five minutes"
    assert validate({"spec": spec}, schema, preprocess=True)
