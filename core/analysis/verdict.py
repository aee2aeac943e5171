"""The analysis protocol the executors call: a runner returns a Verdict, never raises."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from core.release.actions import AnalysisPhase
from core.release.observed import Outcome
from core.release.spec import AnalysisRef, ReleaseSpec


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
    """No metric provider configured: every analysis is Inconclusive, so a human decides.

    A release is never promoted on missing data; the Prometheus runner is in tasks/prometheus.py.
    """

    def run(
        self, ref: AnalysisRef, phase: AnalysisPhase, spec: ReleaseSpec, key: str = ""
    ) -> Verdict:
        """Inconclusive, naming the templates that could not be evaluated."""
        names = ", ".join(ref.names)
        return Verdict(Outcome.INCONCLUSIVE, f"no analysis provider configured for {names}")

    def validate(self, spec: ReleaseSpec) -> None:
        """Nothing to check: every analysis will ask a human."""
