"""The platform's files that hold secrets: written whole, 0600 from the start, generated once."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_file(path: Path, data: bytes | str, mode: int = 0o600) -> None:
    """Write atomically (a reader never sees half a file), with `mode` from the start."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def generated_once(path: Path, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The JSON object in `path`, made by `make()` and stored 0600 the first time it is asked for.

    Later calls (and later runs) read the same values: generated credentials stay stable.
    """
    if not path.exists():
        write_file(path, json.dumps(make()))
    return json.loads(path.read_text())
