"""Velero's resource list: parsed, and compared with what a restore brought back."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from core.recovery.contents import object_key
from core.recovery.resource_list import ListedItem, drill_items, missing_from, parse_resource_list

LISTED = {
    "apps/v1/Deployment": ["shop/web"],
    "v1/ConfigMap": ["shop/web-config", "shop/kube-root-ca.crt"],
    "v1/Secret": ["shop/web-secrets"],
    "v1/Service": ["shop/web"],
    "v1/Namespace": ["shop"],
    "v1/ServiceAccount": ["shop/default"],
}


def test_parse_keeps_group_version_kind_namespace_and_name() -> None:
    items = parse_resource_list(LISTED)
    assert ListedItem("apps/v1", "Deployment", "shop", "web") in items
    assert ListedItem("v1", "Namespace", None, "shop") in items
    assert len(items) == 7


@pytest.mark.parametrize("bad", [[], {"Deployment": ["a/b"]}, {"apps/v1/Deployment": "shop/web"}])
def test_garbage_is_a_clear_error(bad) -> None:
    with pytest.raises(ConfigError, match="not a Velero resource list"):
        parse_resource_list(bad)


def test_drill_items_are_the_four_namespaced_kinds() -> None:
    kinds = sorted({i.kind for i in drill_items(parse_resource_list(LISTED))})
    assert kinds == ["ConfigMap", "Deployment", "Secret", "Service"]


def test_missing_names_what_the_restore_did_not_bring_back_under_mapped_namespaces() -> None:
    items = parse_resource_list(LISTED)
    mapping = {"shop": "drill-1-shop"}
    present = {
        object_key("apps", "deployments", "drill-1-shop", "web"),
        object_key("", "services", "drill-1-shop", "web"),
        object_key("", "secrets", "drill-1-shop", "web-secrets"),
        object_key("", "configmaps", "drill-1-shop", "kube-root-ca.crt"),
        object_key("", "configmaps", "shop", "web-config"),  # the source namespace: not restored
    }
    assert missing_from(items, present, mapping) == ["ConfigMap shop/web-config"]
    present.add(object_key("", "configmaps", "drill-1-shop", "web-config"))
    assert missing_from(items, present, mapping) == []
