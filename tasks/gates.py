"""Pre-deployment gates a machine checks: manifests, alert rules, migrations, CI results."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks import KubernetesCluster
from blocks.tools import find_tool
from core.delivery.checklist import (
    ALERTS,
    DIGEST,
    MANIFESTS,
    SCAN,
    TESTS,
    Checklist,
    Item,
    human_items,
    judge_migrations,
    machine,
)
from core.errors import ConfigError
from tasks.gates_manifests import (
    first_lines,
    render_overlay,
    validate_manifests,
)
from tasks.gates_post import (  # noqa: F401
    HumanConfirmation,
    confirm_human_items,
    post_deploy_checks,
    publish_checklist,
)
from tasks.quality import run_tool

_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
_NOISE = re.compile(r"^\s*(Checking |Unit Testing: |FAILED:\s*$|SUCCESS)")


@task(name="check-alert-rules", cache_policy=NO_CACHE)
def check_alert_rules(rules_file: str | Path, tests_file: str | Path | None = None) -> list[str]:
    """`promtool check rules`, then `promtool test rules` when a tests file is given.

    Returns:
        One line per failing command with promtool's first lines; empty when both pass.
    """
    promtool, rules = find_tool("promtool"), Path(rules_file)
    runs = [(["check", "rules", str(rules)], None)]
    if tests_file:
        tests = Path(tests_file)
        runs.append((["test", "rules", tests.name], tests.parent))  # rule_files are relative
    problems = []
    for args, cwd in runs:
        proc = run_tool([promtool, *args], cwd=cwd)
        if proc.returncode != 0:
            said = [
                s for s in (proc.stderr + "\n" + proc.stdout).splitlines() if not _NOISE.match(s)
            ]
            what = f"promtool {args[0]} rules {Path(args[2]).name}"
            problems.append(f"{what}: {first_lines(chr(10).join(said), 8)}")
    return problems


@task(name="check-migrations", cache_policy=NO_CACHE)
def check_migrations(app_dir: str | Path) -> Item:
    """The "Database migrations ready" item from `<app_dir>/deploy/migrations.yaml`."""
    path = Path(app_dir) / "deploy" / "migrations.yaml"
    text = path.read_text() if path.is_file() else None
    return judge_migrations(text, str(path))


def _alert_files(app_dir: Path) -> list[tuple[Path, Path | None]]:
    """(rules file, its `<stem>.test.yml` or None) under <app_dir>/deploy/alerts."""
    found = sorted((app_dir / "deploy" / "alerts").glob("*.y*ml"))
    rules = [p for p in found if ".test." not in p.name]
    return [
        (p, next((t for t in found if t.name.startswith(f"{p.stem}.test.")), None)) for p in rules
    ]


def _alerts_item(app_dir: Path) -> Item:
    pairs = _alert_files(app_dir)
    if not pairs:
        where = app_dir / "deploy" / "alerts"
        return machine(ALERTS, "pre", False, f"no alert rules: add Prometheus rules to {where}")
    try:
        problems = [p for rules, tests in pairs for p in check_alert_rules(rules, tests)]
    except ConfigError as exc:
        return machine(ALERTS, "pre", False, str(exc))
    if problems:
        return machine(ALERTS, "pre", False, "; ".join(problems))
    tested = sum(t is not None for _, t in pairs)
    return machine(
        ALERTS,
        "pre",
        True,
        f"{len(pairs)} rule file(s) pass promtool check, "
        f"{tested} with unit tests (promtool test rules)",
    )


def _manifests_item(
    cluster: KubernetesCluster, overlay_dir: Path, objects: list[dict[str, Any]] | None = None
) -> Item:
    try:
        objects = render_overlay(overlay_dir) if objects is None else objects
        problems = validate_manifests(cluster, objects)
    except ConfigError as exc:
        return machine(MANIFESTS, "pre", False, str(exc))
    if problems:
        more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        return machine(MANIFESTS, "pre", False, "; ".join(problems[:5]) + more)
    return machine(
        MANIFESTS,
        "pre",
        True,
        f"{len(objects)} objects of {overlay_dir.name} "
        "accepted by the apiserver (server-side dry-run, Pod Security "
        "Admission)",
    )


def _digest_item(image: str | None) -> Item:
    if not image:
        return machine(DIGEST, "pre", None, "no image given to check")
    if not _DIGEST.search(image):
        return machine(
            DIGEST, "pre", False, f"{image} is a moving tag: deploy <repository>@sha256:<digest>"
        )
    return machine(DIGEST, "pre", True, f"{image} (signature not verified: no verifier configured)")


def pre_deploy_gates(
    cluster: KubernetesCluster,
    app_dir: str | Path,
    overlay_dir: str | Path,
    ci: dict[str, Any] | None,
    image: str | None = None,
    objects: list[dict[str, Any]] | None = None,
) -> Checklist:
    """Run the machine gates before a deploy; the seed's human pre-deployment items stay pending.

    Call it inside a flow: each check is a task. Nothing raises for a failing gate: the
    checklist records it (see Checklist.ok and Checklist.failures).

    Args:
        cluster: the cluster block whose apiserver validates the manifests.
        app_dir: the application's directory (holding deploy/alerts and deploy/migrations.yaml).
        overlay_dir: the kustomize overlay to deploy.
        ci: the CI results, {"tests": (ok, detail), "scan": (ok, detail)}; a missing one is
            listed as skipped.
        image: the image to deploy, checked to be pinned by digest (skipped when None).
        objects: the manifests that will really be applied, when they differ from the rendered
            overlay (the delivery validates its release's own Deployments and Services: their
            selectors carry the track, which an overlay's Deployment cannot be changed into).

    Returns:
        The pre-deployment checklist.
    """
    app, ci = Path(app_dir), ci or {}
    checklist = Checklist()
    for key, name in (("tests", TESTS), ("scan", SCAN)):
        if key in ci:
            ok, detail = ci[key]
            checklist.add(machine(name, "pre", bool(ok), str(detail)))
        else:
            checklist.add(machine(name, "pre", None, f"no CI {key} result given"))
    checklist.add(check_migrations(app), _manifests_item(cluster, Path(overlay_dir), objects))
    checklist.add(_digest_item(image), _alerts_item(app), *human_items("pre"))
    return checklist
