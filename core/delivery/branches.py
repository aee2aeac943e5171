"""The one branch map: which environments a push to a branch deploys to, in order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from core.errors import ConfigError

#: The seed's rules: `develop` deploys to staging; `main` goes through staging to production. Any
#: other branch deploys nowhere (its pull requests run CI only).
BRANCH_ENVIRONMENTS: dict[str, tuple[str, ...]] = {
    "develop": ("staging",),
    "main": ("staging", "production"),
}


def environments_for(
    branch: str, rules: Mapping[str, Sequence[str]] | None = None
) -> tuple[str, ...]:
    """The environments a push to `branch` deploys to, in order.

    Raises:
        ConfigError: the branch deploys nowhere.
    """
    table = BRANCH_ENVIRONMENTS if rules is None else rules
    envs = tuple(table.get(branch, ()))
    if not envs:
        known = ", ".join(f"{b} -> {' -> '.join(e)}" for b, e in table.items())
        raise ConfigError(
            f"branch {branch!r} deploys nowhere ({known}): merge it into one of those branches",
            branch=branch,
        )
    return envs


def parse_branch_map(text: str) -> dict[str, tuple[str, ...]]:
    """Read "develop=staging,main=staging>production" into a branch -> environments map.

    Raises:
        ConfigError: an entry is not branch=environment[>environment...].
    """
    branches: dict[str, tuple[str, ...]] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        branch, sep, chain = item.partition("=")
        envs = tuple(e.strip() for e in chain.split(">"))
        if not (sep and branch.strip() and all(envs)):
            raise ConfigError(
                f"branch map entry {item!r} is not branch=environment (or branch=a>b for an "
                "ordered chain, e.g. main=staging>production)"
            )
        branches[branch.strip()] = envs
    return branches
