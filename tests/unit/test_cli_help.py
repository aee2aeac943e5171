"""`kyb --help` documents the exit codes; every command takes --output; usage errors exit 2."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cli.main import app

COMMANDS = [
    ["env", "ls"],
    ["release", "get"],
    ["release", "promote"],
    ["release", "abort"],
    ["release", "start"],
    ["release", "undo"],
    ["backup", "ls"],
    ["backup", "create"],
    ["backup", "restore"],
    ["backup", "confirm-dns"],
    ["drill"],
    ["delivery", "ls"],
    ["delivery", "get"],
]


def test_help_documents_the_exit_codes() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for code in ("0 success", "1 the thing failed", "2 usage error", "3 not found", "4 nothing"):
        assert code in " ".join(result.stdout.split())


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_takes_output(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0 and "--output" in result.stdout


def test_a_usage_error_exits_2_on_stderr() -> None:
    result = CliRunner().invoke(app, ["release", "get"])
    assert result.exit_code == 2 and "Missing argument" in result.stderr
    assert CliRunner().invoke(app, ["env", "ls", "--output", "yaml"]).exit_code == 2
    assert CliRunner().invoke(app, ["backup", "restore", "x", "--existing", "all"]).exit_code == 2
    assert CliRunner().invoke(app, ["backup", "confirm-dns"]).exit_code == 2  # --by is required


def test_without_a_prefect_server_nothing_runs_and_it_says_how_to_set_one(monkeypatch) -> None:
    import cli.output

    class Unset:
        @staticmethod
        def value() -> None:
            return None

    monkeypatch.setattr(cli.output, "PREFECT_API_URL", Unset)  # no API URL, no profile
    result = CliRunner().invoke(app, ["env", "ls"])
    assert result.exit_code == 1
    assert "no Prefect server: set PREFECT_API_URL" in result.stderr
    assert result.stdout == ""  # no throwaway server was started to answer
