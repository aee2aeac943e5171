"""The scanner plug-in registry.

known names, an unknown name lists them, and a scanner whose binary is missing is an error naming it
(never an empty, passing result).
"""

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


def test_gosec_that_is_not_installed_is_an_error_that_says_how(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("KYB_GOSEC", raising=False)  # not configured
    monkeypatch.setenv("PATH", str(tmp_path))  # and not on PATH
    with pytest.raises(ToolUnavailable, match=r"gosec is not installed.*go install .*KYB_GOSEC"):
        GosecScanner().run(tmp_path)


def test_a_configured_gosec_path_that_is_not_a_file_is_an_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KYB_GOSEC", str(tmp_path / "nowhere" / "gosec"))
    with pytest.raises(ToolUnavailable, match=r"KYB_GOSEC=.* is not a file"):
        GosecScanner().run(tmp_path)
