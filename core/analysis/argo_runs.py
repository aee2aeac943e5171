"""Argo's AnalysisRuns read as the pipeline's own analyses: a verdict and the same table rows.

Under `engine: argo` the controller measures; the flow reads each AnalysisRun the Rollout started
and reports it as a pipeline analysis is reported (tasks/prometheus.py): one row per metric with
its query, values, threshold, outcome, whether it decides, and why. A secret argument's value is
never shown (Argo keeps it in a Secret; the run names only the reference).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from core.release.observed import Outcome

_ARG = re.compile(r"\{\{\s*args\.([\w-]+)\s*\}\}")
# AnalysisRun phases -> verdicts; Pending and Running have none yet
_OUTCOME = {
    "Successful": Outcome.SUCCESSFUL,
    "Failed": Outcome.FAILED,
    "Error": Outcome.ERROR,
    "Inconclusive": Outcome.INCONCLUSIVE,
}
SHOWN_VALUES = 10  # the last measurements a row shows, as the pipeline's table does


@dataclass(frozen=True)
class RunReport:
    """One AnalysisRun: its name, verdict (None while running), why, and its table rows."""

    name: str
    outcome: Outcome | None
    reason: str
    rows: list[dict[str, str]]


def _args(run: dict[str, Any]) -> dict[str, str]:
    out = {}
    for arg in (run.get("spec") or {}).get("args") or ():
        secret = (arg.get("valueFrom") or {}).get("secretKeyRef")
        out[arg["name"]] = "***" if secret else str(arg.get("value", ""))
    return out


def _shown(text: str, args: dict[str, str]) -> str:
    return _ARG.sub(lambda m: args.get(m.group(1), m.group(0)), text or "")


def _query(metric: dict[str, Any]) -> str:
    provider = metric.get("provider") or {}
    if "prometheus" in provider:
        return str(provider["prometheus"].get("query", ""))
    if "web" in provider:
        return str(provider["web"].get("url", ""))
    return ", ".join(provider) or "-"


def _threshold(metric: dict[str, Any]) -> str:
    parts = []
    if metric.get("successCondition"):
        parts.append(f"success: {metric['successCondition']}")
    if metric.get("failureCondition"):
        parts.append(f"failure: {metric['failureCondition']}")
    return "; ".join(parts) or "-"


def read_run(run: dict[str, Any]) -> RunReport:
    """An AnalysisRun's verdict and table rows."""
    spec, status = run.get("spec") or {}, run.get("status") or {}
    args = _args(run)
    results = {r.get("name"): r for r in status.get("metricResults") or ()}
    rows = []
    for metric in spec.get("metrics") or ():
        result = results.get(metric.get("name"), {})
        measured = result.get("measurements") or []
        kept = measured[-SHOWN_VALUES:]
        values = ", ".join(str(m.get("value", m.get("phase", "?"))) for m in kept) or "-"
        if len(measured) > len(kept):
            values = f"({len(measured) - len(kept)} earlier), {values}"
        last = measured[-1] if measured else {}
        why = result.get("message") or last.get("message") or ""
        counts = ", ".join(
            f"{k} {result[k]}"
            for k in ("successful", "failed", "inconclusive", "error")
            if result.get(k)
        )
        rows.append(
            {
                "metric": str(metric.get("name", "")),
                "query": _shown(_query(metric), args),
                "values": _shown(values, args),
                "threshold": _shown(_threshold(metric), args),
                "outcome": str(result.get("phase") or "Pending"),
                "decides": "no (dry-run)" if result.get("dryRun") else "yes",
                "why": _shown(why or counts or "-", args),
            }
        )
    phase = status.get("phase") or ""
    outcome = _OUTCOME.get(phase)
    reason = status.get("message") or ""
    if outcome is not None and not reason:
        decided = [r for r in rows if r["outcome"] == phase] or rows
        reason = "; ".join(f"{r['metric']}: {r['outcome']} ({r['values']})" for r in decided)
    name = str((run.get("metadata") or {}).get("name", ""))
    return RunReport(name, outcome, reason or phase or "running", rows)
