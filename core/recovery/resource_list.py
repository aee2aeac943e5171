"""Velero's resource list of a backup: every item it recorded as backed up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import ConfigError

# the kinds a drill checks, as (group, resource) of core.recovery.restore_plan.object_key
DRILL_RESOURCES = {
    "Deployment": ("apps", "deployments"),
    "Service": ("", "services"),
    "ConfigMap": ("", "configmaps"),
    "Secret": ("", "secrets"),
}


@dataclass(frozen=True)
class ListedItem:
    """One item of the resource list."""

    api_version: str
    kind: str
    namespace: str | None
    name: str


def parse_resource_list(data: Any) -> list[ListedItem]:
    """Parse the decompressed JSON of a backup's resource list.

    Velero stores it beside the backup tarball (`<backup>-resource-list.json.gz`) as
    `{"apps/v1/Deployment": ["ns/name", ...], "v1/Namespace": ["name"], ...}`. It is what the backup
    *claims* to hold; a drill compares it with what a restore really brings back, so a tarball that
    lost an object (a truncated upload, a tampered store) fails the drill instead of passing
    silently.

    Raises:
        ConfigError: it is not a mapping of "group/version/Kind" to "namespace/name" lists.
    """
    if not isinstance(data, dict):
        raise ConfigError("not a Velero resource list: expected a JSON object of kinds")
    items = []
    for gvk, names in data.items():
        api_version, _, kind = str(gvk).rpartition("/")
        if not kind or not api_version or not isinstance(names, list):
            raise ConfigError(f"not a Velero resource list: bad entry {gvk!r}")
        for ref in names:
            ns, _, name = str(ref).rpartition("/")
            items.append(ListedItem(api_version, kind, ns or None, name))
    return items


def drill_items(items: list[ListedItem]) -> list[ListedItem]:
    """The listed Deployments, Services, ConfigMaps and Secrets (what a drill must find)."""
    return [i for i in items if i.kind in DRILL_RESOURCES and i.namespace]


def missing_from(
    listed: list[ListedItem], present: set[tuple], mapping: dict[str, str]
) -> list[str]:
    """Listed drill items absent from `present` (object_key tuples, namespaces mapped).

    Returns:
        "Kind namespace/name" for each, in list order; the namespace is the original one.
    """
    out = []
    for item in drill_items(listed):
        group, resource = DRILL_RESOURCES[item.kind]
        ns = mapping.get(item.namespace or "", item.namespace)
        if (group, resource, ns, item.name) not in present:
            out.append(f"{item.kind} {item.namespace}/{item.name}")
    return out
