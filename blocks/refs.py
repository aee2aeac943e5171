"""A saved block named as a flow-run parameter: the reference the UI's block selector sends."""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block


def block_ref(block_type: type[Block], name: str) -> dict[str, Any]:
    """The parameter value naming the saved block `name` of `block_type` (resolved by the run).

    A flow parameter typed by a block takes what the Prefect UI's block selector sends; a script,
    the webhook or the `kyb` command sends this instead, by name, and the flow run loads it.
    """
    return {"$ref": {"block_document_slug": f"{block_type.get_block_type_slug()}/{name}"}}
