"""What the Prefect UI's run form shows for a flow parameter beside its docstring's description."""

from __future__ import annotations

from typing import Any

from pydantic import Field


def titled(title: str) -> Any:
    """The parameter's title in the run form (Prefect would show its Python name).

    Use as `Annotated[str, titled("Rollout YAML")]`; the description comes from the flow's
    docstring (its Args section).
    """
    return Field(json_schema_extra={"title": title})
