"""The one branch map: the environments each branch deploys to, in order, and who may push."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class BranchRule:
    """A branch, the environments a push to it deploys to (in order), who may trigger it.

    Attributes:
        branch: the branch name (refs/heads/<branch>).
        environments: the environments, in order; the last is where the push ends.
        repositories: the repositories whose pushes to this branch may deploy (owner/name or
            clone/web URL); empty: whoever the caller's default list allows.
    """

    branch: str
    environments: tuple[str, ...]
    repositories: tuple[str, ...] = ()


def parse_branch_map(text: str) -> dict[str, BranchRule]:
    """Read "develop=staging,main=staging>production" into a branch -> rule map.

    An entry may end with "@" and the repositories allowed to trigger it, separated by "|":
    "main=staging>production@acme/kyb-platform|https://git.example.com/acme/kyb.git".
    Environments never contain "@", so the first "@" after "=" starts the repositories (an SSH
    URL such as git@github.com:acme/kyb.git may follow it).

    Raises:
        ConfigError: an entry is not branch=environment[>environment...][@repo[|repo...]], or
            a branch is given twice.
    """
    rules: dict[str, BranchRule] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        branch, sep, rest = (part.strip() for part in item.partition("="))
        chain, at, listed = rest.partition("@")
        envs = tuple(e.strip() for e in chain.split(">"))
        repos = tuple(r.strip() for r in listed.split("|")) if at else ()
        if not (sep and branch and all(envs) and all(repos)):
            raise ConfigError(
                f"branch map entry {item!r} is not branch=environment (or branch=a>b for an "
                "ordered chain, e.g. main=staging>production, optionally followed by "
                "@owner/name|clone-url for the repositories allowed to trigger it)"
            )
        if branch in rules:
            raise ConfigError(f"branch {branch!r} is given twice in the branch map: keep one")
        rules[branch] = BranchRule(branch, envs, repos)
    return rules
