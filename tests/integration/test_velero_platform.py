"""Velero on the local platform.

both storage locations Available, a backup of a namespace lands in the S3 store, and backup sync
brings it to the disaster-recovery cluster.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client, watch

from blocks import ObjectStore, VeleroInstall
from sandbox.components.s3store import S3Store
from sandbox.platform import BLOCK_NAME, DR_BLOCK_NAME, Platform
from sandbox.settings import Settings

GROUP, VERSION = "velero.io", "v1"
S3_NS = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}


def _keys(store: ObjectStore, prefix: str) -> list[str]:
    """List object keys through the S3 API (path-style ListObjectsV2).

    Unsigned: gofakes3 does not check signatures (see sandbox/components/s3store.py).
    """
    resp = httpx.get(store.bucket_url, params={"list-type": "2", "prefix": prefix}, timeout=10)
    resp.raise_for_status()
    root = ET.fromstring(resp.text)
    return [k.text or "" for k in root.findall("s3:Contents/s3:Key", S3_NS)]


def _wait_for(
    api: client.ApiClient, ns: str, plural: str, name: str, done: Any, timeout: int
) -> dict[str, Any] | None:
    """Watch one Velero object until done(obj) holds or timeout seconds pass; return it."""
    custom = client.CustomObjectsApi(api)
    last = None
    deadline = time.monotonic() + timeout
    while (left := int(deadline - time.monotonic())) > 0:
        stream = watch.Watch().stream(
            custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            ns,
            plural,
            field_selector=f"metadata.name={name}",
            timeout_seconds=left,
        )
        for event in stream:
            last = event["object"]
            if event["type"] != "DELETED" and done(last):
                return last
    return last


def test_storage_locations_are_available_in_both_clusters(platform: Platform) -> None:
    local, dr = VeleroInstall.load(BLOCK_NAME), VeleroInstall.load(DR_BLOCK_NAME)
    assert local.cluster.server() != dr.cluster.server()
    store = ObjectStore.load(BLOCK_NAME)
    for install in (local, dr):
        with install.cluster.api_client() as api:
            bsl = client.CustomObjectsApi(api).get_namespaced_custom_object(
                GROUP,
                VERSION,
                install.namespace,
                "backupstoragelocations",
                install.storage_location,
            )
        assert bsl["status"]["phase"] == "Available"
        assert bsl["spec"]["objectStorage"]["bucket"] == store.bucket
        assert bsl["spec"]["config"]["s3Url"] == store.endpoint
        assert install.metrics_url and "velero_" in httpx.get(install.metrics_url).text


def test_backup_lands_in_the_store_and_syncs_to_the_dr_cluster(
    platform: Platform, kube: client.ApiClient, namespace: str
) -> None:
    local, dr = VeleroInstall.load(BLOCK_NAME), VeleroInstall.load(DR_BLOCK_NAME)
    client.CoreV1Api(kube).create_namespaced_config_map(
        namespace, {"metadata": {"name": "settings"}, "data": {"mode": "dr-test"}}
    )
    name = f"{namespace}-backup"
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Backup",
        "metadata": {"name": name, "namespace": local.namespace},
        "spec": {
            "includedNamespaces": [namespace],
            "excludedResources": ["pods", "replicasets"],
            "storageLocation": local.storage_location,
            "ttl": "1h0m0s",
        },
    }
    custom = client.CustomObjectsApi(kube)
    custom.create_namespaced_custom_object(GROUP, VERSION, local.namespace, "backups", body)
    try:
        finished = ("Completed", "PartiallyFailed", "Failed", "FailedValidation")
        backup = _wait_for(
            kube,
            local.namespace,
            "backups",
            name,
            lambda o: (o.get("status") or {}).get("phase") in finished,
            timeout=120,
        )
        status = (backup or {}).get("status") or {}
        assert status.get("phase") == "Completed", status
        assert status["progress"]["itemsBackedUp"] >= 2  # the namespace and its ConfigMap

        keys = _keys(ObjectStore.load(BLOCK_NAME), f"backups/{name}/")
        assert f"backups/{name}/{name}.tar.gz" in keys
        assert f"backups/{name}/velero-backup.json" in keys

        # Velero's backup sync ticks once a minute, whatever --backup-sync-period says (a const
        # in its backup_sync_controller.go); the server's 10s period makes every tick sync.
        with dr.cluster.api_client() as dr_api:
            synced = _wait_for(
                dr_api,
                dr.namespace,
                "backups",
                name,
                lambda o: (o.get("status") or {}).get("phase") == "Completed",
                timeout=75,
            )
        assert synced is not None, "backup sync did not bring the backup to the DR cluster"
        assert synced["spec"]["includedNamespaces"] == [namespace]
    finally:  # Velero deletes the backup from the store, then sync drops the DR cluster's copy
        request = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "DeleteBackupRequest",
            "metadata": {"generateName": f"{name}-", "namespace": local.namespace},
            "spec": {"backupName": name},
        }
        custom.create_namespaced_custom_object(
            GROUP, VERSION, local.namespace, "deletebackuprequests", request
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_store_keeps_objects_across_a_restart(platform, tmp_path, monkeypatch) -> None:
    """A second store (own state folder and port) proves the bolt file persists the bucket."""
    monkeypatch.setenv("KYB_SANDBOX_HOME", str(tmp_path))
    monkeypatch.setenv("KYB_S3_PORT", str(_free_port()))
    second = S3Store(Settings())
    second.install()  # the cached binary: nothing to build
    second.up()
    try:
        url = f"{second.endpoint}/{second.bucket}/backups/probe/velero-backup.json"
        assert httpx.put(url, content=b'{"kind": "Backup"}', timeout=10).status_code == 200
        second.down()
        assert second.daemon.pid() is None
        second.up()
        assert httpx.get(url, timeout=10).content == b'{"kind": "Backup"}'
    finally:
        second.down()
    key_file = tmp_path / "s3" / "credentials.json"
    second.credentials()
    assert key_file.stat().st_mode & 0o777 == 0o600


def _listening(pid: int) -> set[tuple[str, int]]:
    """(hex address, port) of every TCP socket the process listens on, from /proc."""
    fd_dir = Path(f"/proc/{pid}/fd")
    links = []
    for fd in os.listdir(fd_dir):
        with contextlib.suppress(FileNotFoundError):  # closed between listing and reading
            links.append(os.readlink(fd_dir / fd))
    inodes = {link[len("socket:[") : -1] for link in links if link.startswith("socket:[")}
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            if parts[3] == "0A" and parts[9] in inodes:  # state LISTEN, socket of ours
                addr, port = parts[1].rsplit(":", 1)
                found.add((addr, int(port, 16)))
    return found


@pytest.mark.parametrize("component", ["velero", "dr-velero"])
def test_velero_servers_listen_on_loopback_only(platform: Platform, component: str) -> None:
    server = platform.velero if component == "velero" else platform.dr_velero
    pid = server.daemon.pid()
    assert pid, f"{component} is not running"
    loopback = "0100007F"  # 127.0.0.1 as /proc/net/tcp writes it
    # metrics and profiler, nothing else: controller-runtime's :8080 is switched off at build
    assert _listening(pid) == {(loopback, server.metrics_port), (loopback, server.profiler_port)}
