"""DESIGN.md principle 1: the deciding core imports no Prefect, no kubernetes client, no httpx."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import core

FORBIDDEN = ("prefect", "kubernetes", "httpx", "docker", "prometheus_api_client")


def test_core_imports_no_io_libraries() -> None:
    modules = [f"core.{m.name}" for m in pkgutil.iter_modules(core.__path__)]
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
