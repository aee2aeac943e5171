"""A Rollout (argoproj.io/v1alpha1) or a RollingUpdate Deployment read as a release spec."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from core.release import unsupported
from core.release.errors import SpecError
from core.release.spec import ReleaseSpec

#: The Rollout (and Deployment) `spec` fields a release reads; `strategy` is read on its own.
_SPEC_FIELDS = {
    "replicas",
    "selector",
    "template",
    "workloadRef",
    "minReadySeconds",
    "revisionHistoryLimit",
    "progressDeadlineSeconds",
    "paused",
}


def load_rollout(
    source: str | Mapping[str, Any],
    *,
    app: str | None = None,
    namespace: str | None = None,
    image: str | None = None,
    container: str | None = None,
) -> ReleaseSpec:
    """Read an argoproj.io/v1alpha1 Rollout or an apps/v1 RollingUpdate Deployment as a spec.

    Args:
        source: one YAML document, or its parsed mapping (left unmodified).
        app: the app's name, where the document has none (or to override its name).
        namespace: the namespace to release into, overriding the document's.
        image: the image by digest (the seed's Rollouts have no pod template, hence no image).
        container: the container that runs the app, where the template has several.

    Raises:
        SpecError or pydantic.ValidationError (both ValueErrors), saying what to fix.
    """
    doc = yaml.safe_load(source) if isinstance(source, str) else source
    if not isinstance(doc, Mapping):
        raise SpecError("expected one YAML mapping: a Rollout or a Deployment")
    api, kind = doc.get("apiVersion"), doc.get("kind")
    meta, spec = doc.get("metadata") or {}, dict(doc.get("spec") or {})
    if (api, kind) == ("argoproj.io/v1alpha1", "Rollout"):
        strategy = _with_field_refs(spec.pop("strategy", None), doc)
    elif (api, kind) == ("apps/v1", "Deployment"):
        update = spec.pop("strategy", None) or {}
        if update.get("type", "RollingUpdate") != "RollingUpdate":
            raise SpecError(
                f"Deployment strategy {update['type']!r} is not supported: use "
                "RollingUpdate, or a Rollout for blueGreen/canary"
            )
        strategy = {"rolling": update.get("rollingUpdate") or {}}
    else:
        raise SpecError(
            f"expected an argoproj.io/v1alpha1 Rollout or an apps/v1 Deployment, got {api}/{kind}"
        )
    if unknown := sorted(set(spec) - _SPEC_FIELDS - set(unsupported.ROLLOUT)):
        raise SpecError(
            f"spec.{unknown[0]} is not a {kind} field this release reads: remove it (known: "
            f"{', '.join(sorted(_SPEC_FIELDS))})"
        )
    if spec.get("paused") is False:  # asks for nothing
        del spec["paused"]
    name = app or meta.get("name")
    template = spec.pop("template", None)
    if template is not None and spec.get("workloadRef") is not None:
        raise SpecError(
            "spec.template and spec.workloadRef are both set: keep one (workloadRef takes the "
            "Deployment's template)"
        )
    labels = (spec.pop("selector", None) or {}).get("matchLabels")
    _check_selector(labels, template)
    pod = ((template or {}).get("spec") or {}).get("containers") or [{}]
    chosen = next((c for c in pod if c.get("name") in (container or name,)), pod[0])
    data = {
        **spec,
        "app": name,
        "namespace": namespace or meta.get("namespace"),
        "image": image or chosen.get("image"),
        "container": container or chosen.get("name"),
        "strategy": strategy,
        "labels": labels,
        "template": template,
    }
    if missing := [k for k in ("app", "namespace", "image", "strategy") if not data[k]]:
        raise SpecError(
            f"the {kind} has no {', '.join(missing)}: pass it to load_rollout "
            "(image by digest: registry/repo@sha256:<64 hex>)"
        )
    return ReleaseSpec.model_validate({k: v for k, v in data.items() if v is not None})


def _check_selector(labels: Mapping[str, str] | None, template: Mapping[str, Any] | None) -> None:
    """The selector must select the template's pods, as the apiserver demands of a Deployment."""
    pod_labels = ((template or {}).get("metadata") or {}).get("labels")
    if not labels or pod_labels is None:
        return
    if wrong := sorted(k for k, v in labels.items() if pod_labels.get(k) != v):
        raise SpecError(
            f"spec.selector.matchLabels {wrong[0]}={labels[wrong[0]]!r} does not select "
            "spec.template's pods: give the template that label"
        )


_PATH_PART = re.compile(r"([A-Za-z0-9_]+)|\['([^']*)'\]|\[\"([^\"]*)\"\]|\[(\d+)\]")


def field_value(doc: Mapping[str, Any], path: str) -> str:
    """A field of the Rollout by path, e.g. metadata.labels['team'] or spec.replicas.

    Raises:
        SpecError: the path is malformed or leads to nothing (or to a mapping or list).
    """
    value: Any = doc
    rest = path
    while rest:
        match = _PATH_PART.match(rest.lstrip("."))
        if match is None:
            raise SpecError(f"valueFrom.fieldRef {path!r} is not a field path: e.g. metadata.name")
        key = next(g for g in match.groups() if g is not None)
        rest = rest.lstrip(".")[match.end() :]
        if isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        elif isinstance(value, Mapping) and key in value:
            value = value[key]
        else:
            raise SpecError(f"valueFrom.fieldRef {path!r}: the Rollout has no such field")
    if isinstance(value, Mapping | list) or value is None:
        raise SpecError(f"valueFrom.fieldRef {path!r} is not a single value")
    return str(value).lower() if isinstance(value, bool) else str(value)


def _with_field_refs(node: Any, doc: Mapping[str, Any]) -> Any:
    """The strategy with every analysis argument's `valueFrom.fieldRef` replaced by its value."""
    if isinstance(node, list):
        return [_with_field_refs(item, doc) for item in node]
    if not isinstance(node, Mapping):
        return node
    ref = (node.get("valueFrom") or {}).get("fieldRef") if "name" in node else None
    if isinstance(ref, Mapping) and len(node.get("valueFrom") or {}) == 1:
        rest = {k: v for k, v in node.items() if k != "valueFrom"}
        return {**rest, "value": field_value(doc, str(ref.get("fieldPath", "")))}
    return {k: _with_field_refs(v, doc) for k, v in node.items()}
