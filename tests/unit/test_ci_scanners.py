"""The scanner plug-in registry: known names, an unknown name lists them, and a scanner whose
binary is missing is an error naming it (never an empty, passing result)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.ci import ToolUnavailable
from core.errors import ConfigError
from tasks.security import SCANNERS, GosecScanner, Scanner, scanner_for


def test_registry_has_gosec_by_default_and_optional_python_scanners() -> None:
    assert set(SCANNERS) == {"gosec", "bandit", "pip-audit"}
    for name in SCANNERS:
        scanner = scanner_for(name, timeout=5)
        assert isinstance(scanner, Scanner) and scanner.name == name
    assert isinstance(scanner_for("gosec"), GosecScanner)


def test_unknown_scanner_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown scanner 'trivy'.*bandit.*gosec.*pip-audit"):
        scanner_for("trivy")


@pytest.mark.parametrize("name", ["bandit", "pip-audit"])
def test_missing_scanner_binary_is_an_error_naming_it(name, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    with pytest.raises(ToolUnavailable, match=rf"{name} is not installed.*install it"):
        scanner_for(name).run(Path(tmp_path))


def test_gosec_that_cannot_be_built_is_an_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KYB_CACHE_DIR", str(tmp_path / "cache"))  # not built there
    monkeypatch.setenv("PATH", str(tmp_path))  # and no go to build it with
    with pytest.raises(ToolUnavailable, match=r"gosec v\S+ could not be built.*Go toolchain"):
        GosecScanner().run(tmp_path)
