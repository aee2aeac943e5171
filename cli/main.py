"""The `kyb` command: exit 0 ok, 1 failed, 2 usage error, 3 not found, 4 nothing to act on."""

from __future__ import annotations

import typer

from cli import backup, delivery, envs, recovery, release, runs

HELP = """Deliver the KYB platform from a terminal: environments, releases, deliveries, backups.

Every command takes --output text|json (json: one JSON document on stdout); errors go to
stderr and say what to fix. Point it at the platform first: eval "$(uv run sandbox env)".

Exit codes: 0 success; 1 the thing failed (a failed or aborted run, a failed verdict, an
unreachable service); 2 usage error; 3 not found (no such app, run, backup or block); 4 nothing
to act on (e.g. no paused release to promote, no recovery waiting for DNS).
"""

app = typer.Typer(
    name="kyb", help=HELP, no_args_is_help=True, add_completion=False, rich_markup_mode=None
)

app.add_typer(envs.app, name="env")
app.add_typer(release.app, name="release")
app.add_typer(delivery.app, name="delivery")
app.add_typer(backup.app, name="backup")
app.command("drill")(recovery.drill)

# `runs` adds `release start` and `release undo` to `release`; `recovery` adds `backup restore`
# and `backup confirm-dns` to `backup`
__all__ = ["app", "recovery", "runs"]
