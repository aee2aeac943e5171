"""The field types of a release spec: names, images by digest, durations, int-or-percent."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, WithJsonSchema
from pydantic.alias_generators import to_camel

from core.durations import whole_seconds
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
#: A duration as Argo writes it: a Go duration ("30s", "5m", "1h30m") or whole seconds; held in
#: whole seconds. The form shows a text field, so "5m" can be typed as written in a Rollout.
Seconds = Annotated[
    int,
    BeforeValidator(_seconds),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": _GO_DURATION},
                {"type": "integer", "minimum": 0},
            ],
            "description": "A Go duration such as 30s, 5m or 1h30m, or whole seconds.",
        }
    ),
]
IntOrPercent = Annotated[int | str, BeforeValidator(_int_or_percent)]


class Model(BaseModel):
    """A frozen spec model: snake_case attributes, camelCase aliases, unknown keys refused."""

    model_config = ConfigDict(
        frozen=True,
        populate_by_name=True,
        alias_generator=to_camel,
        extra="forbid",
        serialize_by_alias=True,  # dumps (flow-run parameters) match the form's camelCase schema
    )
