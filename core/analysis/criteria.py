"""One metric's success and failure conditions, applied to a measurement as Argo applies them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.analysis.conditions import Condition, ConditionError
from core.analysis.judge import Direction
from core.analysis.templates import MetricTemplate
from core.release.observed import Outcome


def no_data(result: Any) -> bool:
    """True for a result that holds nothing to judge: None, NaN (0/0), or a list of only those."""
    if result is None:
        return True
    if isinstance(result, float):
        return math.isnan(result)
    if isinstance(result, list | tuple):
        return all(no_data(item) for item in result)
    return False


@dataclass(frozen=True)
class Criteria:
    """A metric's conditions with its argument values, e.g. `result[0] >= 0.95`.

    Argo's rules (utils/evaluate): with both conditions, failure true is Failed, success true is
    Successful, neither is Inconclusive; with one, the other is its negation. Ours on top: a
    result with no data (an empty vector, NaN, nothing at the JSON path) is Inconclusive whatever
    the conditions say, since no data is never a success (DESIGN.md, 4); a condition that cannot
    be evaluated (index out of range, wrong type) is an Error, as in Argo.
    """

    success: Condition | None
    failure: Condition | None
    args: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, metric: MetricTemplate, args: Mapping[str, str]) -> Criteria:
        """The metric's conditions, parsed, with `args` for their placeholders.

        Raises:
            ConfigError: a condition is not of Argo's supported forms.
        """
        success, failure = metric.conditions()
        return cls(success, failure, dict(args))

    def judge(self, result: Any) -> tuple[Outcome, str | None]:
        """(outcome, why it is an Error or Inconclusive; None otherwise) of one result."""
        if no_data(result):
            return Outcome.INCONCLUSIVE, "no data"
        try:
            ok = self.success.evaluate(result, self.args) if self.success else None
            bad = self.failure.evaluate(result, self.args) if self.failure else None
        except ConditionError as exc:
            return Outcome.ERROR, str(exc)
        if ok is None:
            ok = not bad
        if bad is None:
            bad = not ok
        if bad:
            return Outcome.FAILED, None
        if ok:
            return Outcome.SUCCESSFUL, None
        return Outcome.INCONCLUSIVE, "neither condition held"

    def direction(self) -> Direction:
        """Which change the statistical judge counts as worse, read from the conditions."""
        way = self.success.direction() if self.success else None
        if way is not None:
            return Direction.DECREASE_IS_BAD if way == "up" else Direction.INCREASE_IS_BAD
        way = self.failure.direction() if self.failure else None
        return Direction.DECREASE_IS_BAD if way == "down" else Direction.INCREASE_IS_BAD

    def __str__(self) -> str:
        parts = []
        if self.success is not None:
            parts.append(f"success: {self.success.text}")
        if self.failure is not None:
            parts.append(f"failure: {self.failure.text}")
        text = "; ".join(parts)
        for name, value in self.args.items():
            text = text.replace(f"{{{{args.{name}}}}}", value)
        return text
