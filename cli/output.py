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
from prefect.blocks.core import Block
from prefect.settings import PREFECT_API_URL


class ExitCode(IntEnum):
    """What `kyb` exits with; scripts may rely on these."""

    OK = 0  # success
    FAILED = 1  # the thing failed: a failed or aborted run, a failed verdict, an unreachable API
    USAGE = 2  # a usage error (Typer's own)
    NOT_FOUND = 3  # no such app, run or block
    NOTHING_TO_DO = 4  # nothing to act on, e.g. no paused release to promote


P = ParamSpec("P")
R = TypeVar("R")
B = TypeVar("B", bound=Block)


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
    """Run `command`; a CliError or an unreachable service becomes stderr and an exit code.

    Without a Prefect server configured it runs nothing and exits 1, saying how to set one.
    """

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        if not PREFECT_API_URL.value():  # else Prefect starts a throwaway server (it phones home)
            typer.echo(
                "kyb: no Prefect server: set PREFECT_API_URL (and its auth), or on the local "
                'platform run eval "$(uv run sandbox env)"',
                err=True,
            )
            raise typer.Exit(int(ExitCode.FAILED))
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


def load_saved(block_type: type[B], name: str, option: str) -> B:
    """The saved block `name` of `block_type` (exit 3 naming it and `option` when there is none)."""
    try:
        return block_type.load(name)
    except ValueError:
        fail(
            f"no {block_type.get_block_type_name()} block named {name!r}: give {option} with "
            "a saved one (prefect block ls)",
            ExitCode.NOT_FOUND,
        )
