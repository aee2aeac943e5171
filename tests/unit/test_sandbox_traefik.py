"""Traefik's configuration as the platform writes it: loopback only, the token never inline."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sandbox.components.traefik import refuse_outside_loopback
from sandbox.errors import PlatformError
from sandbox.traefik import manifests


@pytest.mark.parametrize("host", ["127.0.0.1", "127.32.250.1", "127.255.255.254", "localhost"])
def test_loopback_addresses_are_accepted(host: str) -> None:
    refuse_outside_loopback("the apiserver", host)


@pytest.mark.parametrize("host", ["10.0.0.1", "0.0.0.0", "192.0.2.1", "::1", "example.com", ""])
def test_any_other_address_is_refused_naming_it_and_the_fix(host: str) -> None:
    with pytest.raises(PlatformError) as err:
        refuse_outside_loopback("the apiserver", host)
    assert f"the apiserver {host!r} is outside 127.0.0.0/8" in str(err.value)
    assert err.value.fix == "use a 127.0.0.0/8 address"


def test_static_config_names_the_token_file_and_loopback_entry_points() -> None:
    token, ca = Path("/state/traefik/token"), Path("/state/traefik/ca.crt")
    conf = manifests.static_config(
        "127.0.0.1:38080", "127.0.0.1:38081", "https://127.0.0.1:36443", token, ca
    )
    assert conf["entryPoints"] == {
        "web": {"address": "127.0.0.1:38080"},
        "traefik": {"address": "127.0.0.1:38081"},
    }
    gateway = conf["providers"]["kubernetesGateway"]
    assert gateway["token"] == str(token) and gateway["certAuthFilePath"] == str(ca)
    assert set(conf["providers"]) == {"providersThrottleDuration", "kubernetesGateway"}
    assert conf["global"] == {"checkNewVersion": False, "sendAnonymousUsage": False}
    assert yaml.safe_load(yaml.safe_dump(conf)) == conf


def test_the_gateway_listens_on_the_web_entry_point_for_routes_of_every_namespace() -> None:
    gateway = manifests.gateway(38080)
    (listener,) = gateway["spec"]["listeners"]
    assert listener["port"] == 38080 and listener["protocol"] == "HTTP"
    assert listener["allowedRoutes"] == {"namespaces": {"from": "All"}}
    assert gateway["spec"]["gatewayClassName"] == manifests.gateway_class()["metadata"]["name"]
    ref = manifests.parent_ref()
    assert (ref["namespace"], ref["name"], ref["sectionName"]) == ("kyb-traefik", "kyb", "web")


def test_traefik_may_not_read_pods_nor_write_anything_but_status() -> None:
    (role,) = [d for d in manifests.rbac() if d["kind"] == "ClusterRole"]
    verbs = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    writes = {(g, r, v) for g, r, v in verbs if v not in ("list", "watch")}
    assert all(r.endswith("/status") and v == "update" for _, r, v in writes)
    assert not any(r == "pods" for _, r, _ in verbs)
