"""The layering rules: which package may import which, and a deciding core without I/O libraries."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import core

ROOT = Path(core.__file__).resolve().parents[1]
PROJECT = (
    "core",
    "blocks",
    "tasks",
    "flows",
    "deployments",
    "cli",
    "sandbox",
    "benchmarks",
    "tests",
)
FORBIDDEN = ("prefect", "kubernetes", "httpx", "docker", "prometheus_api_client", "requests")

#: Who may import whom, by the importing module's package (a core domain is its own row). Every
#: row lists the project's packages that package may import; anything not listed is refused.
RULES: dict[str, set[str]] = {
    "core": set(),
    "core.errors": set(),
    "core.durations": {"core.errors"},
    "core.names": set(),
    "core.quantity": {"core.errors"},
    "core.ci": {"core.errors", "core.ci"},
    "core.release": {
        "core.errors",
        "core.durations",
        "core.names",
        "core.quantity",
        "core.release",
    },
    "core.analysis": {"core.errors", "core.durations", "core.release", "core.analysis"},
    "core.recovery": {"core.errors", "core.durations", "core.names", "core.recovery"},
    "core.delivery": {
        "core.errors",
        "core.names",
        "core.release",
        "core.analysis",
        "core.delivery",
    },
    "blocks": {"core", "blocks"},
    "tasks": {"core", "blocks", "tasks"},
    "flows": {"core", "blocks", "tasks", "flows"},
    "deployments": {"core", "blocks", "tasks", "deployments"},
    "cli": {"core", "blocks", "tasks", "flows", "deployments", "cli"},  # no one else imports cli
    "sandbox": {"core", "blocks", "sandbox"},
    "benchmarks": {
        "core",
        "blocks",
        "tasks",
        "flows",
        "deployments",
        "sandbox",
        "benchmarks",
        "tests",
    },
    "tests": set(PROJECT),
}


def _row(module: str) -> str:
    """The RULES row of a module: its core domain (core.release, ...) or its top package."""
    parts = module.split(".")
    if parts[0] == "core" and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


def _allowed(row: str, target: str) -> bool:
    """Whether a module of `row` may import `target` (a dotted name of the project)."""
    return any(target == a or target.startswith(a + ".") for a in RULES[row])


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every project import in a file, function-level imports included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names]
        found += [(node.lineno, n) for n in names if n.split(".")[0] in PROJECT]
    return found


def _module_of(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


def _files() -> list[Path]:
    return sorted(p for pkg in PROJECT for p in (ROOT / pkg).rglob("*.py"))


def test_every_package_has_a_row() -> None:
    rows = {_row(_module_of(p)) for p in _files()}
    assert rows <= set(RULES), f"no layering rule for {sorted(rows - set(RULES))}"


def test_every_import_follows_the_table() -> None:
    broken = []
    for path in _files():
        row = _row(_module_of(path))
        for line, target in _imports(path):
            if not _allowed(row, target):
                broken.append(f"{path.relative_to(ROOT)}:{line} imports {target} ({row} may not)")
    assert not broken, "layering broken:\n" + "\n".join(broken)


@pytest.mark.parametrize(
    ("row", "target", "ok"),
    [
        ("flows", "sandbox.load", False),  # the product never imports its test bench
        ("tasks", "flows.release", False),  # tasks sit below flows
        ("sandbox", "tasks.kube", False),  # the platform configures blocks, never runs tasks
        ("core.release", "core.analysis.verdict", False),  # analysis builds on release
        ("core.analysis", "core.release.spec", True),
        ("blocks", "core.names", True),
        ("cli", "flows.dr_drill", True),  # the command line starts and reads the flows
        ("flows", "cli.main", False),  # the product never imports its command line
        ("deployments", "cli.output", False),
    ],
)
def test_the_table_says_what_it_means(row: str, target: str, ok: bool) -> None:
    assert _allowed(row, target) is ok


def _unimportable(name: str) -> None:
    raise ImportError(f"{name} cannot be imported, so its imports cannot be checked")


def core_modules() -> list[str]:
    """Every module of core, subpackages' modules included."""
    found = pkgutil.walk_packages(core.__path__, prefix="core.", onerror=_unimportable)
    return sorted(m.name for m in found)


def test_core_is_grouped_by_domain() -> None:
    modules = core_modules()
    domains = {"core.release", "core.analysis", "core.recovery", "core.ci", "core.delivery"}
    assert domains <= set(modules)
    loose = [m for m in modules if m.count(".") == 1 and m not in domains]
    assert sorted(loose) == ["core.durations", "core.errors", "core.names", "core.quantity"], loose


def test_core_imports_no_io_libraries() -> None:
    modules = core_modules()
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted(n for n in sys.modules if n.split('.')[0] in {FORBIDDEN!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"core pulled in: {out.stdout.strip()}"


def test_every_task_module_defines_a_task() -> None:
    """tasks/ holds tasks only: each module defines at least one @task."""
    empty = []
    for path in sorted((ROOT / "tasks").glob("*.py")):
        if path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text())
        decorated = [
            d
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef)
            for d in node.decorator_list
            if "task" in ast.unparse(d).split("(")[0].split(".")
        ]
        if not decorated:
            empty.append(path.name)
    assert not empty, f"modules in tasks/ without a @task: {empty}"
