"""The one parser of Kubernetes resource quantities (`500m`, `128Mi`, `1.5`, `2e3`)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from core.errors import ConfigError

_SUFFIX = {
    "": 1,
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
# apimachinery's grammar: a signed decimal, then a binary or decimal SI suffix or an exponent.
_QUANTITY = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?")
EXAMPLE = "e.g. 500m, 0.5, 128Mi, 1Gi"


def parse_quantity(value: str | int | float, what: str = "quantity") -> Decimal:
    """The value of a quantity such as `500m` (0.5) or `128Mi` (134217728), never negative.

    Raises:
        ConfigError: not a Kubernetes quantity, or negative; the message names `what`.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"{what} {value!r} is not a quantity: use {EXAMPLE}")
    text = str(value)
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise ConfigError(f"{what} {value!r} is not a quantity: use {EXAMPLE}")
    number, suffix = match.group(1), match.group(2) or ""
    try:
        amount = Decimal(number)
        factor = Decimal(f"1{suffix}") if suffix[:1] in ("e", "E") else Decimal(_SUFFIX[suffix])
    except InvalidOperation as exc:
        raise ConfigError(f"{what} {value!r} is not a quantity: use {EXAMPLE}") from exc
    if amount < 0:
        raise ConfigError(f"{what} {value!r} is negative: use 0 or more, {EXAMPLE}")
    return amount * factor
