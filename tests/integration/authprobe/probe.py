"""A flow the auth tests deploy and run through a real worker: what did its process get?"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from prefect import flow
from prefect.settings import get_current_settings


@flow
def auth_probe(out: str) -> None:
    """Write whether this run authenticates and whether a tool it runs could see the auth."""
    from tasks.quality import run_tool

    auth = get_current_settings().api.auth_string
    secret = auth.get_secret_value() if auth else ""
    dumped = run_tool([sys.executable, "-c", "import os; print(dict(os.environ))"]).stdout
    report = {"auth_set": bool(secret), "tool_saw_auth": bool(secret) and secret in dumped}
    Path(out).write_text(json.dumps(report))
