"""Exit codes, `--output` and how results and errors reach the terminal (no Prefect, no cluster)."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Sequence
from enum import IntEnum, StrEnum
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import httpx
import typer
import urllib3
from kubernetes.client.exceptions import ApiException


class ExitCode(IntEnum):
    """What `kyb` exits with; scripts may rely on these."""

    OK = 0  # success
    FAILED = 1  # the thing failed: a failed or aborted run, a failed verdict, an unreachable API
    USAGE = 2  # a usage error (Typer's own)
    NOT_FOUND = 3  # no such app, run or block
    NOTHING_TO_DO = 4  # nothing to act on, e.g. no paused release to promote


P = ParamSpec("P")
R = TypeVar("R")


class Output(StrEnum):
    """How a command prints its result."""

    TEXT = "text"
    JSON = "json"


OutputOption = Annotated[
    Output,
    typer.Option("--output", "-o", help="text for people, json: one JSON document on stdout."),
]


class CliError(Exception):
    """A failure to report on stderr with what to fix, and the exit code to leave with."""

    def __init__(self, message: str, code: ExitCode = ExitCode.FAILED) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: ExitCode = ExitCode.FAILED) -> NoReturn:
    """Stop the command: `message` goes to stderr, the process exits with `code`."""
    raise CliError(message, code)


def emit(output: Output, data: Any, text: str) -> None:
    """Print the result: `text` for people, or `data` as one JSON document."""
    if output is Output.JSON:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], empty: str = "(none)") -> str:
    """Rows as a plain, left-aligned text table with upper-case headers (`empty` if no rows)."""
    if not rows:
        return empty
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    heads = [c.upper().replace("_", " ") for c in columns]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(heads)]
    lines = [heads, *cells]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def _cell(value: Any) -> str:
    """One table cell: '-' for nothing, yes/no for booleans."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def handled(command: Callable[P, R]) -> Callable[P, R]:
    """Run `command`; a CliError or an unreachable service becomes stderr and an exit code."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except CliError as exc:
            typer.echo(f"kyb: {exc}", err=True)
            raise typer.Exit(int(exc.code)) from None
        except KeyboardInterrupt:
            raise typer.Exit(int(ExitCode.OK)) from None
        except ApiException as exc:  # its str() carries response headers: status and reason only
            typer.echo(f"kyb: the cluster answered {exc.status} {exc.reason}", err=True)
            raise typer.Exit(int(ExitCode.FAILED)) from None
        except (OSError, httpx.HTTPError, urllib3.exceptions.HTTPError) as exc:
            typer.echo(
                f"kyb: cannot reach a service ({type(exc).__name__}: {exc}); check PREFECT_API_URL "
                'and the cluster, e.g. eval "$(uv run sandbox env)"',
                err=True,
            )
            raise typer.Exit(int(ExitCode.FAILED)) from None

    return run
