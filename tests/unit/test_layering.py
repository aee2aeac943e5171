"""DESIGN.md principle 1: the deciding core imports no Prefect, no kubernetes client, no httpx."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import core

FORBIDDEN = ("prefect", "kubernetes", "httpx", "docker", "prometheus_api_client")


def _unimportable(name: str) -> None:
    raise ImportError(f"{name} cannot be imported, so its imports cannot be checked")


def core_modules() -> list[str]:
    """Every module of core, subpackages' modules included (walk_packages imports packages only
    to find their modules; a package that fails to import fails the test, never hides them)."""
    found = pkgutil.walk_packages(core.__path__, prefix="core.", onerror=_unimportable)
    return sorted(m.name for m in found)


def test_core_modules_include_the_subpackages() -> None:
    modules = core_modules()
    assert {"core.errors", "core.ci", "core.ci.findings", "core.planners.canary"} <= set(modules)


def test_core_imports_no_io_libraries() -> None:
    modules = core_modules()
    assert modules, "core has no modules"
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted(n for n in sys.modules if n.split('.')[0] in {FORBIDDEN!r}))\n"
    )
    root = Path(core.__file__).parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"core pulled in: {out.stdout.strip()}"
