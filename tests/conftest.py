"""Test-wide settings: Prefect never phones home and never starts a throwaway ephemeral server."""

from __future__ import annotations

import os

from sandbox.components.prefect_server import client_env
from sandbox.tools import ensure_gosec, tool_env

# Set before prefect is imported by any test module: its settings are read at import time.
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")  # tasks called bare
os.environ.setdefault("KYB_PAUSE_POLL_SECONDS", "1")  # human pauses answered by tests
# The platform's Prefect server requires basic auth: its URL and the profiles file (0600) that
# holds the auth string, so this process and every child it starts are its clients.
os.environ.update(client_env(os.environ))
# The tools the platform builds (gosec; built once, then cached) reach the pipeline as its
# KYB_<TOOL> settings, as a worker image or a team's CI would set them.
ensure_gosec()
for _key, _value in tool_env().items():
    os.environ.setdefault(_key, _value)
