"""The seed's deployment checklist as data: machine items, human items, and the verdict."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, field_validator

Kind = Literal["machine", "human"]
Phase = Literal["pre", "post"]


class Status(StrEnum):
    """Where an item stands.

    machine items pass, fail or are skipped; human items are confirmed or declined; both start
    pending.
    """

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    PENDING = "pending"
    CONFIRMED = "confirmed"
    DECLINED = "declined"


BAD = frozenset({Status.FAILED, Status.DECLINED})
DONE = frozenset({Status.PASSED, Status.CONFIRMED})

# The machine items' names (the seed's wording, plus the digest rule of DESIGN.md).
TESTS = "All tests passing"
SCAN = "Security scan passed"
MANIFESTS = "Configuration validated"
MIGRATIONS = "Database migrations ready"
ALERTS = "Alerts configured"
DIGEST = "Image deployed by digest"
HEALTH = "Health checks passing"
PERFORMANCE = "Performance metrics normal"
ERROR_RATE = "Error rates acceptable"
METRICS = "Metrics collecting"

# (phase, group, name, kind, how it is decided), in the seed's order.
SEED: tuple[tuple[Phase, str, str, Kind, str], ...] = (
    ("pre", "Code Quality", TESTS, "machine", "the CI test stage"),
    ("pre", "Code Quality", "Code review completed", "human", ""),
    ("pre", "Code Quality", SCAN, "machine", "the CI security stage"),
    ("pre", "Code Quality", "Performance tests passed", "human", ""),
    ("pre", "Infrastructure", "Infrastructure as code updated", "human", ""),
    ("pre", "Infrastructure", MIGRATIONS, "machine", "deploy/migrations.yaml"),
    ("pre", "Infrastructure", MANIFESTS, "machine", "server-side dry-run on the apiserver"),
    ("pre", "Infrastructure", "Secrets updated", "human", ""),
    ("pre", "Infrastructure", DIGEST, "machine", "the image reference"),
    ("pre", "Monitoring", ALERTS, "machine", "promtool check rules + test rules"),
    ("pre", "Monitoring", "Dashboards updated", "human", ""),
    ("pre", "Monitoring", "Runbooks prepared", "human", ""),
    ("pre", "Monitoring", "Oncall schedule confirmed", "human", ""),
    ("pre", "Communication", "Stakeholders notified", "human", ""),
    ("pre", "Communication", "Maintenance window scheduled", "human", ""),
    ("pre", "Communication", "Rollback plan reviewed", "human", ""),
    ("pre", "Communication", "Team availability confirmed", "human", ""),
    ("post", "Verification", HEALTH, "machine", "GET /health"),
    ("post", "Verification", "Key functionality tested", "human", ""),
    ("post", "Verification", PERFORMANCE, "machine", "Prometheus: latency-p95"),
    ("post", "Verification", ERROR_RATE, "machine", "Prometheus: error-rate"),
    ("post", "Monitoring", "Alerts functioning", "human", ""),
    ("post", "Monitoring", METRICS, "machine", "Prometheus: up and http_requests_total"),
    ("post", "Monitoring", "Logs flowing", "human", ""),
    ("post", "Monitoring", "Dashboards updated", "human", ""),
    ("post", "Communication", "Deployment status communicated", "human", ""),
    ("post", "Communication", "Documentation updated", "human", ""),
    ("post", "Communication", "Lessons learned documented", "human", ""),
    ("post", "Communication", "Next deployment planned", "human", ""),
)
_GROUP = {(phase, name): group for phase, group, name, _kind, _how in SEED}
_ORDER = {(phase, name): n for n, (phase, _group, name, _kind, _how) in enumerate(SEED)}


class Item(BaseModel):
    """One checklist line: what, who decides (machine or human), when, where it stands and why."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: Kind
    phase: Phase
    status: Status = Status.PENDING
    detail: str = ""
    who: str = ""

    @field_validator("detail", "who")
    @classmethod
    def _one_line(cls, value: str) -> str:
        return re.sub(r"\s+", " ", value).strip()[:500]

    @property
    def group(self) -> str:
        """The seed's heading the item sits under ("" for items the seed does not list)."""
        return _GROUP.get((self.phase, self.name), "")


def machine(name: str, phase: Phase, ok: bool | None, detail: str) -> Item:
    """A machine item's result: passed (ok), failed (not ok) or skipped (ok is None)."""
    status = Status.SKIPPED if ok is None else Status.PASSED if ok else Status.FAILED
    return Item(
        name=name, kind="machine", phase=phase, status=status, detail=detail, who="pipeline"
    )


def human_items(phase: Phase) -> list[Item]:
    """The seed's items of `phase` that only a person can confirm, all pending."""
    return [
        Item(name=name, kind="human", phase=p)
        for p, _group, name, kind, _how in SEED
        if p == phase and kind == "human"
    ]


class Checklist(BaseModel):
    """The items of one release; `ok` only when nothing failed, was declined or is still pending.

    The seed's deployment checklist as data: machine items the pipeline checks, human items a
    person confirms, and one checklist that says whether a release may go ahead and renders as
    markdown. Every item of the seed's Pre-Deployment and Post-Deployment lists appears under the
    seed's own wording. The ones a program can decide are machine items (tests, scan, manifests on
    the apiserver, alert rules, migrations, health, error rate, latency, metrics); the others are
    human items that stay pending until someone confirms or declines them. Nothing is ever
    confirmed by silence.
    """

    items: list[Item] = []

    def add(self, *items: Item) -> Checklist:
        """Add items; an item replaces an earlier one of the same name and phase. Returns self."""
        for item in items:
            same = [
                i
                for i, old in enumerate(self.items)
                if (old.name, old.phase) == (item.name, item.phase)
            ]
            if same:
                self.items[same[0]] = item
            else:
                self.items.append(item)
        return self

    def pending(self, kind: Kind | None = None, phase: Phase | None = None) -> list[Item]:
        """Items not decided yet, optionally of one kind and phase."""
        return [
            i
            for i in self.items
            if i.status is Status.PENDING and kind in (None, i.kind) and phase in (None, i.phase)
        ]

    def failures(self) -> list[Item]:
        """Items that failed or were declined."""
        return [i for i in self.items if i.status in BAD]

    def ok(self) -> bool:
        """True when no item failed or was declined and none is pending (skipped items pass)."""
        return not self.failures() and not self.pending()

    def summary(self) -> str:
        """One line: ready, or what stands in the way."""
        counts = {s: sum(i.status is s for i in self.items) for s in Status}
        if self.ok():
            done = (Status.PASSED, Status.CONFIRMED, Status.SKIPPED)
            return "ready: " + ", ".join(f"{counts[s]} {s}" for s in done)
        parts = [
            f"{counts[s]} {s}"
            for s in (Status.FAILED, Status.DECLINED, Status.PENDING)
            if counts[s]
        ]
        return "not ready: " + ", ".join(parts)

    def as_markdown(self, title: str) -> str:
        """A checkbox list per phase, each item with its kind, status and why."""
        lines = [f"# {title}", "", f"**{self.summary()}**"]
        for phase, heading in (("pre", "Pre-deployment"), ("post", "Post-deployment")):
            items = [i for i in self.items if i.phase == phase]
            items.sort(key=lambda i: _ORDER.get((i.phase, i.name), len(_ORDER)))
            if items:
                lines += ["", f"## {heading}", ""]
                lines += [_line(i) for i in items]
        return "\n".join(lines) + "\n"


def _line(item: Item) -> str:
    box = "x" if item.status in DONE else " "
    where = f", {item.group}" if item.group else ""
    by = f" by {item.who}" if item.who and item.kind == "human" else ""
    why = f": {item.detail}" if item.detail else ""
    return f"- [{box}] {item.name} ({item.kind}{where}): **{item.status}**{by}{why}"


# --- deploy/migrations.yaml: the "Database migrations ready" gate ---

MIGRATIONS_HELP = (
    "declare the release's schema migrations in {where}: `migrations: []` with a `reason:` when "
    "there are none, else a list of `{{id: ..., reversible: true|false}}` (a non-reversible one "
    "also needs `approved_by: <who>`)"
)


def judge_migrations(text: str | None, where: str) -> Item:
    """Decide the migrations gate from the file's text (None: the file does not exist).

    Args:
        text: the YAML text of deploy/migrations.yaml, or None when it is missing.
        where: the file's path, named in the messages.

    Returns:
        The "Database migrations ready" item, passed or failed with what to add.
    """
    fix = MIGRATIONS_HELP.format(where=where)
    if text is None:
        return machine(MIGRATIONS, "pre", False, f"no migrations file: {fix}")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return machine(MIGRATIONS, "pre", False, f"not YAML ({str(exc)[:120]}): {fix}")
    if not isinstance(data, dict) or not isinstance(data.get("migrations"), list):
        return machine(MIGRATIONS, "pre", False, f"no `migrations:` list: {fix}")
    listed, reason = data["migrations"], str(data.get("reason") or "").strip()
    if not listed:
        if not reason:
            return machine(MIGRATIONS, "pre", False, f"an empty list needs a `reason:`: {fix}")
        return machine(MIGRATIONS, "pre", True, f"no migrations: {reason}")
    problems, ids = [], []
    for n, entry in enumerate(listed, 1):
        mid = entry.get("id") if isinstance(entry, dict) else None
        if isinstance(mid, bool) or not isinstance(mid, str | int) or not str(mid).strip():
            problems.append(f"migration #{n} has no `id`")
            continue
        ids.append(str(mid))
        if not isinstance(entry.get("reversible"), bool):
            problems.append(f"migration {mid} needs `reversible: true|false`")
        elif not entry["reversible"] and not str(entry.get("approved_by") or "").strip():
            problems.append(
                f"migration {mid} is not reversible: set `approved_by: <who>` once "
                "someone has approved it (and its backup plan)"
            )
    if len(set(ids)) != len(ids):
        problems.append("migration ids repeat")
    if problems:
        return machine(MIGRATIONS, "pre", False, f"{'; '.join(problems)} ({where})")
    one_way = [str(e["id"]) for e in listed if not e["reversible"]]
    tail = f", not reversible (approved): {', '.join(one_way)}" if one_way else ""
    return machine(MIGRATIONS, "pre", True, f"{len(listed)} declared: {', '.join(ids)}{tail}")
