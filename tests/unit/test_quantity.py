"""The one quantity parser agrees with Kubernetes' own and refuses what the apiserver refuses."""

from __future__ import annotations

from decimal import Decimal

import pytest
from kubernetes.utils.quantity import parse_quantity as kubernetes_parse

from core.errors import ConfigError
from core.quantity import parse_quantity


@pytest.mark.parametrize(
    "text",
    [
        "0",
        "1",
        "1.5",
        ".5",
        "500m",
        "100u",
        "3n",
        "1k",
        "2M",
        "1G",
        "128Mi",
        "1Gi",
        "2e3",
        "1E3",
        7,
        0.25,
    ],
)
def test_agrees_with_the_kubernetes_client(text: str | int | float) -> None:
    assert parse_quantity(text) == kubernetes_parse(str(text))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("invalid", "is not a quantity"),
        ("10MB", "is not a quantity"),
        ("1.2.3", "is not a quantity"),
        ("", "is not a quantity"),
        ("-1", "is negative"),
        (True, "is not a quantity"),
    ],
)
def test_refuses_with_an_example(text: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse_quantity(text, "limits.memory")  # type: ignore[arg-type]
    assert "e.g. 500m, 0.5, 128Mi, 1Gi" in str(caught.value)
    assert str(caught.value).startswith("limits.memory")


def test_values_are_exact() -> None:
    assert parse_quantity("500m") == Decimal("0.5") and parse_quantity("1Ki") == 1024
