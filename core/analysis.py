"""The analysis protocol the executors call, and the human decisions a paused release takes.

tasks/analysis.py's PrometheusRunner implements AnalysisRunner; with no Prometheus configured,
the release uses NoJudge, which answers Inconclusive: a release is never promoted on missing data.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from core.actions import AnalysisPhase
from core.observed import Outcome
from core.spec import AnalysisRef, ReleaseSpec


@dataclass(frozen=True)
class Verdict:
    """An analysis outcome and why, in one line."""

    outcome: Outcome
    reason: str
    report: str | None = None  # key of the artifact with every metric's measurements, if any


class AnalysisRunner(Protocol):
    """Runs the analysis templates `ref` names for one release and returns a verdict."""

    def run(
        self, ref: AnalysisRef, phase: AnalysisPhase, spec: ReleaseSpec, key: str = ""
    ) -> Verdict:
        """Measure and judge; must return (not raise) Error when the metric source fails.

        `key` names this analysis within the release (e.g. "step-2"), for its report.
        """

    def validate(self, spec: ReleaseSpec) -> None:
        """Raise ConfigError if an analysis `spec` names could never run (called before writes)."""


class NoJudge:
    """No metric provider configured: every analysis is Inconclusive, so a human decides."""

    def run(
        self, ref: AnalysisRef, phase: AnalysisPhase, spec: ReleaseSpec, key: str = ""
    ) -> Verdict:
        """Inconclusive, naming the templates that could not be evaluated."""
        names = ", ".join(ref.names)
        return Verdict(Outcome.INCONCLUSIVE, f"no analysis provider configured for {names}")

    def validate(self, spec: ReleaseSpec) -> None:
        """Nothing to check: every analysis will ask a human."""


class Choice(StrEnum):
    """What a human answers at a paused release."""

    PROMOTE = "promote"  # go on past this gate (the next step, or the switch for blue-green)
    PROMOTE_FULL = "promote-full"  # canary: skip the remaining steps and promote now
    SKIP = "skip"  # mark the current canary step done without waiting or analysing
    ABORT = "abort"  # roll back


@dataclass(frozen=True)
class Decision:
    """A human's answer to a pause: the choice, who made it and why."""

    choice: Choice
    decided_by: str
    reason: str = ""
