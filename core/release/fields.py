"""The field types of a release spec: names, images by digest, durations, int-or-percent."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

from core.durations import go_duration, whole_seconds
from core.errors import ConfigError
from core.names import is_dns_1035_label, is_dns_label, label_error

_HOST = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE = re.compile(
    rf"(?:{_HOST}(?::[0-9]+)?/)?{_PART}(?:/{_PART})*(?::[\w][\w.-]{{0,127}})?@sha256:[a-f0-9]{{64}}"
)
GATEWAY_PLUGIN = "argoproj-labs/gatewayAPI"
_GO_DURATION = r"^([0-9]+(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+$|^[0-9]+$"


def _matching(check: Callable[[object], bool], what: str) -> AfterValidator:
    def validate(value: str) -> str:
        if not check(value):
            raise ValueError(label_error(value, what))
        return value

    return AfterValidator(validate)


def _image(value: str) -> str:
    if "@" not in value:
        raise ValueError(
            f"image {value!r} is not pinned by digest (a tag can move): deploy "
            "by digest, registry/repo@sha256:<64 hex>"
        )
    if not _IMAGE.fullmatch(value):
        raise ValueError(
            f"image {value!r} is not a valid reference: deploy by digest, "
            "registry/repo[:tag]@sha256:<64 lowercase hex>"
        )
    return value


def _seconds(value: Any) -> Any:
    """Whole seconds of an Argo duration: seconds, or a Go duration ("30s", "5m", "1h30m")."""
    if value is None or isinstance(value, bool):
        return value
    try:
        return whole_seconds(value)
    except ConfigError as exc:  # pydantic reports ValueErrors with the field's location
        raise ValueError(exc.message) from None


def _int_or_percent(value: Any) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{1,3}%", value) and int(value[:-1]) <= 100:
        return value
    raise ValueError(f"{value!r} is not valid: use a whole number >= 0 or a percentage 0%..100%")


DnsLabel = Annotated[str, _matching(is_dns_label, "DNS-1123 label")]
ServiceName = Annotated[str, _matching(is_dns_1035_label, "DNS-1035 label")]
Image = Annotated[str, AfterValidator(_image)]
#: The run form's duration field: text such as 30s, 5m or 1h30m (bare digits are seconds).
DURATION_SCHEMA = {
    "type": "string",
    "pattern": _GO_DURATION,
    "description": "A Go duration such as 30s, 5m or 1h30m (bare digits are seconds).",
}
#: A duration as Argo writes it: a Go duration ("30s", "5m", "1h30m") or whole seconds; held in
#: whole seconds, written back as a Go duration in JSON (a flow run's parameters, the form), so
#: "5m" is typed and shown as written in a Rollout.
Seconds = Annotated[
    int,
    BeforeValidator(_seconds),
    PlainSerializer(go_duration, return_type=str, when_used="json"),
    WithJsonSchema(DURATION_SCHEMA),
]
IntOrPercent = Annotated[int | str, BeforeValidator(_int_or_percent)]


def field_title(name: str) -> str:
    """A field's title in the run form: its name in words, capitalised.

    "progress_deadline_seconds" reads "Progress deadline seconds", not pydantic's
    "Progressdeadlineseconds" of the alias.
    """
    return name.replace("_", " ").strip().capitalize()


def _form(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """Every property of the model's JSON schema gets its title, and a one-line description."""
    props = schema.get("properties", {})
    for name, info in model.model_fields.items():
        prop = props.get(info.alias or name)
        if prop is None:
            continue
        prop["title"] = field_title(name)
        if prop.get("description"):
            prop["description"] = " ".join(prop["description"].split())


class Model(BaseModel):
    """A frozen spec model: snake_case attributes, camelCase aliases, unknown keys refused.

    Each field's docstring is its description in the Prefect UI's run form, and its title is its
    name in words (`field_title`), references to other models included.
    """

    model_config = ConfigDict(
        frozen=True,
        populate_by_name=True,
        alias_generator=to_camel,
        extra="forbid",
        serialize_by_alias=True,  # dumps (flow-run parameters) match the form's camelCase schema
        use_attribute_docstrings=True,
        json_schema_extra=_form,
    )
