"""Pure readers: what DR, drill and delivery reports say, and one delivery run as a row."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cli.matching import environment_name

_TIMES = re.compile(r"\b(RTO|RPO)\b[^*\n]*\*\*(?P<value>[\d.]+) s\*\*")
_DRILL_HEAD = re.compile(r"^## DR drill of `(?P<backup>[^`]+)`: (?P<verdict>PASSED|FAILED)")
_DR_HEAD = re.compile(r"^## Disaster recovery from `(?P<backup>[^`]+)`")
_DELIVERY_HEAD = re.compile(r"^# Delivery of `(?P<app>[^`]+)` at `(?P<commit>[^`]+)` \((?P<b>.*)\)")
_IMAGE = re.compile(r"^Image `(?P<image>[^`]+)`")


def recovery_times(markdown: str) -> dict[str, float]:
    """The RTO and RPO (seconds) a DR or drill report states; none that it does not."""
    return {f"{m[1].lower()}_seconds": float(m["value"]) for m in _TIMES.finditer(markdown)}


def _table(lines: list[str], header: str) -> list[list[str]]:
    """The cells of the markdown table under the header row `header` (until a non-table line)."""
    if header not in lines:
        return []
    rows = []
    for line in lines[lines.index(header) + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def _bullets(lines: list[str], header: str) -> list[str]:
    """The `- ` items right under the line `header`."""
    if header not in lines:
        return []
    items = []
    for line in lines[lines.index(header) + 1 :]:
        if not line.startswith("- "):
            break
        items.append(line[2:])
    return items


def drill_verdict(markdown: str) -> dict[str, Any]:
    """What a `dr-drill-report` says: passed, backup, RTO/RPO, objects checked, what failed."""
    lines = markdown.splitlines()
    head = _DRILL_HEAD.match(lines[0]) if lines else None
    error = next((ln.split("**", 2)[2].strip() for ln in lines if ln.startswith("**Restore")), "")
    return {
        "passed": bool(head and head["verdict"] == "PASSED"),
        "backup": head["backup"] if head else None,
        **recovery_times(markdown),
        "checked": next((ln for ln in lines if ln.startswith("drill ")), None),
        "kinds": {
            r[0]: {"checked": int(r[1]), "failed": int(r[2])}
            for r in _table(lines, "| kind | checked | failed |")
            if len(r) == 3 and r[1].isdigit() and r[2].isdigit()
        },
        "failures": [f"{r[0]}: {r[1]}" for r in _table(lines, "| object | problem |")],
        "missing": _bullets(lines, "Listed in the backup but not restored:"),
        "error": error or None,
    }


def dr_summary(markdown: str) -> dict[str, Any]:
    """What a `dr-report` says: backup, RTO/RPO, the verification and the DNS step."""
    lines = markdown.splitlines()
    head = _DR_HEAD.match(lines[0]) if lines else None

    def item(prefix: str) -> str | None:
        return next((ln[len(prefix) :].strip() for ln in lines if ln.startswith(prefix)), None)

    return {
        "backup": head["backup"] if head else None,
        **recovery_times(markdown),
        "verification": item("- verification:"),
        "dns": item("- DNS "),
    }


def delivery_report(markdown: str) -> dict[str, Any]:
    """What a `delivery-<app>` report says: image, CI stage seconds, each environment's result."""
    lines = markdown.splitlines()
    head = _DELIVERY_HEAD.match(lines[0]) if lines else None
    image = next((m["image"] for ln in lines if (m := _IMAGE.match(ln))), None)
    stages = {r[0]: r[1] for r in _table(lines, "| stage | seconds |") if len(r) == 2}
    envs = [
        {"environment": r[0], "result": r[1], "strategy": r[2], "release": r[3]}
        for r in _table(lines, "| environment | result | strategy | release |")
        if len(r) == 4
    ]
    return {
        "app": head["app"] if head else None,
        "image": image,
        "ci_seconds": stages,
        "environments": envs,
    }


def duration(started: datetime | None, ended: datetime | None, now: datetime) -> float | None:
    """Seconds from start to end (to `now` while it runs); None when it has not started."""
    if started is None:
        return None
    return round(((ended or now) - started).total_seconds(), 1)


def human_seconds(seconds: float | None) -> str | None:
    """Seconds as a person reads them: 42s, 3m 05s, 1h 02m."""
    if seconds is None:
        return None
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"


def delivery_row(
    run_id: str,
    name: str,
    state: str | None,
    parameters: Mapping[str, Any],
    started: datetime | None,
    ended: datetime | None,
    now: datetime,
) -> dict[str, Any]:
    """One delivery run as `kyb delivery ls` shows it (the environment by its block's name)."""
    seconds = duration(started, ended, now)
    return {
        "name": name,
        "id": run_id,
        "app": parameters.get("app") or "kyb-platform",
        "commit": str(parameters.get("commit") or "")[:12] or None,
        "branch": parameters.get("branch"),
        "environment": environment_name(parameters.get("environment")),
        "state": state,
        "started": started.isoformat(timespec="seconds") if started else None,
        "duration_seconds": seconds,
        "duration": human_seconds(seconds),
    }


def render_dr(found: dict[str, Any]) -> str:
    """A DR report's essentials as text."""
    lines = [f"restored {found['backup']}"]
    if "rto_seconds" in found:
        lines.append(f"RTO {found['rto_seconds']:.1f} s, RPO {found.get('rpo_seconds', 0):.0f} s")
    lines += [f"verification: {found['verification']}"] if found.get("verification") else []
    lines += [f"DNS {found['dns']}"] if found.get("dns") else []
    return "\n".join(lines)


def render_drill(found: dict[str, Any]) -> str:
    """A drill's verdict as text: PASSED/FAILED, RTO/RPO, what was checked, what failed."""
    lines = [f"drill of {found['backup']}: {'PASSED' if found['passed'] else 'FAILED'}"]
    if "rto_seconds" in found:
        lines.append(f"RTO {found['rto_seconds']:.1f} s, RPO {found.get('rpo_seconds', 0):.0f} s")
    lines += [found["checked"]] if found.get("checked") else []
    lines += [f"restore failed: {found['error']}"] if found.get("error") else []
    lines += [f"not restored: {m}" for m in found.get("missing") or []]
    lines += [f"differs: {f}" for f in found.get("failures") or []]
    return "\n".join(lines)
