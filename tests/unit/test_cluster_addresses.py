"""The cluster refuses to start with node, pod or Service addresses outside 127.0.0.0/8."""

from __future__ import annotations

import pytest

from sandbox.cluster import kwok_config
from sandbox.components.cluster import Cluster
from sandbox.errors import PlatformError
from sandbox.settings import Settings


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A state folder of its own, so a refused start is seen to leave nothing behind."""
    monkeypatch.setenv("KYB_SANDBOX_HOME", str(tmp_path))
    for var in (
        "KYB_POD_CIDR",
        "KYB_SERVICE_CIDR",
        "KYB_NODE_IP",
        "KYB_RUN_POD_CIDR",
        "KYB_DR_RUN_POD_CIDR",
    ):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def test_the_defaults_stay_on_loopback(home) -> None:
    settings = Settings()
    kwok_config.check_addresses(settings)
    addresses = (settings.pod_cidr, settings.service_cidr, settings.run_pod_cidr, settings.node_ip)
    assert addresses == ("127.32.0.0/16", "127.64.0.0/16", "127.48.0.0/16", "127.0.0.1")


@pytest.mark.parametrize(
    ("var", "value", "says"),
    [
        ("KYB_POD_CIDR", "10.32.0.0/16", "leaves 127.0.0.0/8"),
        ("KYB_POD_CIDR", "0.0.0.0/0", "leaves 127.0.0.0/8"),
        ("KYB_SERVICE_CIDR", "192.168.0.0/16", "leaves 127.0.0.0/8"),
        ("KYB_NODE_IP", "10.0.0.7", "leaves 127.0.0.0/8"),
        ("KYB_NODE_IP", "::1", "leaves 127.0.0.0/8"),
        ("KYB_POD_CIDR", "127.32.0.0/8", "is not a network"),
        ("KYB_SERVICE_CIDR", "loopback", "is not a network"),
        ("KYB_POD_CIDR", "127.64.0.0/20", "overlaps KYB_SERVICE_CIDR"),
        ("KYB_RUN_POD_CIDR", "172.16.0.0/16", "leaves 127.0.0.0/8"),
        ("KYB_RUN_POD_CIDR", "127.32.128.0/17", "overlaps KYB_RUN_POD_CIDR"),
        ("KYB_DR_RUN_POD_CIDR", "10.49.0.0/16", "leaves 127.0.0.0/8"),
        ("KYB_DR_RUN_POD_CIDR", "127.48.0.0/20", "overlaps KYB_DR_RUN_POD_CIDR"),
        ("KYB_NODE_IP", "127.32.0.9", "overlaps KYB_NODE_IP"),
        ("KYB_NODE_IP", "127.0.0.0/24", "is a range"),
    ],
)
def test_a_cluster_off_loopback_is_refused_before_anything_starts(
    home, monkeypatch, var: str, value: str, says: str
) -> None:
    monkeypatch.setenv(var, value)
    cluster = Cluster(Settings())
    with pytest.raises(PlatformError) as refused:
        cluster.up()
    text = str(refused.value)
    assert text.startswith("[cluster]") and var in text and says in text, text
    assert "-> set" in text or "-> give" in text, text  # it says what to fix
    # nothing was written or started: no kwokctl config, no cluster folder
    assert not cluster.config_file.exists() and not cluster.kubeconfig.parent.exists()
