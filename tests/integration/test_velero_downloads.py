"""Velero data read from the URL Velero returns: S3 over TLS by host name, with the platform's CA.

The real pieces: the main cluster's Velero server writes to the sandbox's s3-tls store
(https://localhost:39443, gofakes3 behind a certificate of the platform's own CA) through a
BackupStorageLocation with caCert set; the product reads back what Velero returns through
DownloadRequests. Each run uses its own prefix in the bucket, so earlier runs' backups are not
synced back in.
"""

from __future__ import annotations

import gzip
import ipaddress
import os
import socket
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from kubernetes import client, watch

from blocks import VeleroInstall
from core.errors import ConfigError
from core.recovery.backups import backup_manifest
from core.recovery.contents import read_backup_tarball
from flows.backup import backup
from sandbox.components.s3tls import machine_name
from sandbox.platform import Platform
from tasks import restore, velero
from tasks.kube import api_for

LOCATION, PUBLIC_LOCATION, BLOCK = "tls", "tls-public", "tls-downloads"
FINAL = ("Completed", "PartiallyFailed", "Failed", "FailedValidation")


def _tls_install(local: VeleroInstall, location: str, **kwargs: object) -> VeleroInstall:
    # a new block: a model_copy of a loaded one would keep its document id (see test_backup_dr)
    return VeleroInstall(
        cluster=local.cluster, namespace=local.namespace, storage_location=location, **kwargs
    )


def _put_location(local: VeleroInstall, body: dict) -> None:
    """(Re)create a storage location and wait until Velero validated it Available."""
    name = body["metadata"]["name"]
    left = velero.get(local, "backupstoragelocations", name)  # one a crashed run left
    if left is not None:
        velero.delete(local, "backupstoragelocations", name)
        objects = client.CustomObjectsApi(api_for(local.cluster))
        events = watch.Watch().stream(
            objects.list_namespaced_custom_object,
            velero.GROUP,
            velero.VERSION,
            local.namespace,
            "backupstoragelocations",
            field_selector=f"metadata.name={name}",
            resource_version=left["metadata"]["resourceVersion"],
            timeout_seconds=30,
        )
        assert any(e["type"] == "DELETED" for e in events), f"{name} not deleted in 30s"
    velero.create(local, "backupstoragelocations", body)
    velero.storage_location.fn(_tls_install(local, name), wait_seconds=90)


def _drop_location(local: VeleroInstall, name: str) -> None:
    velero.delete(local, "backupstoragelocations", name)
    for obj in velero.list_objects(local, "backups"):
        if obj.get("spec", {}).get("storageLocation") == name:
            velero.delete(local, "backups", obj["metadata"]["name"])


def _backup(install: VeleroInstall, ns: str, location: str) -> str:
    """A Backup of `ns` made with the Velero API directly; its name once Completed."""
    name = f"dl-{uuid.uuid4().hex[:10]}"
    body = backup_manifest(name, [ns], ["pods"], "1h", location, namespace=install.namespace)
    velero.create(install, "backups", body)
    done = velero.wait_for(install, "backups", name, velero.phase_in(*FINAL), 180, "backup")
    assert done["status"]["phase"] == "Completed", done["status"]
    return name


@pytest.fixture(scope="module")
def local(platform: Platform) -> VeleroInstall:
    return VeleroInstall.load("local")


@pytest.fixture(scope="module")
def prefix() -> str:
    return f"run-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def tls(platform: Platform, local: VeleroInstall, prefix: str) -> Iterator[VeleroInstall]:
    """Storage location `tls` on the TLS store (caCert set), and a saved block that trusts it."""
    store = platform.s3_tls
    _put_location(local, store.storage_location(LOCATION, prefix=prefix))
    install = _tls_install(local, LOCATION, ca_cert=store.ca_pem())
    install.save(BLOCK, overwrite=True)
    try:
        yield install
    finally:
        VeleroInstall.delete(BLOCK)
        _drop_location(local, LOCATION)


@pytest.fixture(scope="module")
def app_ns(local: VeleroInstall) -> Iterator[str]:
    ns = f"dl-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api_for(local.cluster))
    core.create_namespace({"metadata": {"name": ns}})
    body = {"metadata": {"name": "web-config"}, "data": {"REGION": "eu", "TLS": "yes"}}
    core.create_namespaced_config_map(ns, body)
    yield ns
    core.delete_namespace(ns)


@pytest.fixture(scope="module")
def flow_backup(tls: VeleroInstall, app_ns: str) -> dict:
    """The backup flow run against the TLS location (it reads results and the tarball back)."""
    return backup(
        namespaces=[app_ns],
        velero_install=VeleroInstall.load(BLOCK),
        ttl="1h",
        verify_contents=True,
    )


def _config_map(objects: list, ns: str) -> dict:
    key = ("configmaps", ns, "web-config")
    found = [o for o in objects if (o.resource, o.namespace, o.name) == key]
    assert len(found) == 1, [o.key for o in objects]
    return found[0].body


def test_a_backup_over_tls_by_host_name_completes_and_reads_back(
    platform: Platform, tls: VeleroInstall, app_ns: str, flow_backup: dict
) -> None:
    name = flow_backup["name"]
    assert flow_backup["phase"] == "Completed" and flow_backup["bytes"] > 0
    bsl = velero.get(tls, "backupstoragelocations", LOCATION)
    assert bsl["spec"]["config"]["s3Url"] == f"https://localhost:{platform.settings.ports.s3_tls}"
    assert bsl["spec"]["objectStorage"]["caCert"]  # Velero itself writes over verified TLS

    url = urlsplit(velero.download_url(tls, "BackupContents", name))
    assert (url.scheme, url.hostname, url.port) == ("https", "localhost", platform.s3_tls.port)

    objects = restore.backed_up.fn(tls, name)
    assert _config_map(objects, app_ns)["data"] == {"REGION": "eu", "TLS": "yes"}
    found = velero.results(tls, "BackupResults", name)
    assert velero.messages(found, "errors") == []
    log = gzip.decompress(velero.download(tls, "BackupLog", name)).decode()
    assert name in log


def test_without_the_ca_the_read_fails_at_once_saying_to_set_it(
    platform: Platform, local: VeleroInstall, flow_backup: dict
) -> None:
    name = flow_backup["name"]
    no_ca = _tls_install(local, LOCATION)
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        restore.backed_up(no_ca, name)  # the task, with the shared retry policy
    assert time.monotonic() - started < 30  # verification failed: a setting, not a retry storm
    text = str(info.value)
    assert f"TLS verification of the object store localhost:{platform.s3_tls.port}" in text
    assert "set ca_cert on the VeleroInstall block" in text and f"BackupContents of {name}" in text
    assert "X-Amz" not in text  # the signed URL never reaches a message

    with pytest.raises(ConfigError, match="set ca_cert"):
        velero.results(no_ca, "BackupResults", name)  # unreadable results are never "none"


def test_a_size_bound_below_the_tarball_names_the_object_and_the_limit(
    local: VeleroInstall, tls: VeleroInstall, flow_backup: dict
) -> None:
    name = flow_backup["name"]
    small = _tls_install(local, LOCATION, ca_cert=tls.ca_cert, max_download_bytes=64)
    with pytest.raises(ConfigError) as info:
        velero.download(small, "BackupContents", name)
    text = str(info.value)
    assert f"BackupContents of {name} (" in text and "max_download_bytes (64 bytes)" in text


def test_results_that_cannot_be_read_raise_instead_of_reading_empty(
    platform: Platform, tls: VeleroInstall, app_ns: str, prefix: str
) -> None:
    name = _backup(tls, app_ns, LOCATION)
    assert isinstance(velero.results(tls, "BackupResults", name), dict)
    key = f"{prefix}/backups/{name}/{name}-results.gz"
    store = platform.s3_tls
    context = tls.ssl_context()
    gone = httpx.delete(f"{store.endpoint}/{store.bucket}/{key}", verify=context, timeout=10)
    assert gone.status_code == 204, gone.text
    with pytest.raises(ConfigError) as info:
        velero.results(tls, "BackupResults", name)
    assert "missing in the object store although the backup is Completed" in str(info.value)


def _resolves_to_loopback(name: str) -> bool:
    try:
        found = {a[4][0] for a in socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)}
    except OSError:
        return False
    return bool(found) and all(ipaddress.ip_address(a).is_loopback for a in found)


def test_a_download_url_on_another_host_name_works(
    platform: Platform, local: VeleroInstall, tls: VeleroInstall, app_ns: str, prefix: str
) -> None:
    """Velero signs with the location's publicUrl: this machine's name, not a loopback name."""
    host = machine_name()
    if host is None or not _resolves_to_loopback(host):  # CI must not skip: it fails, saying why
        fail = pytest.fail if os.environ.get("CI") else pytest.skip
        fail(f"this machine's name {host!r} must resolve to loopback only (/etc/hosts)")
    store = platform.s3_tls
    public = f"https://{host}:{store.port}"
    body = store.storage_location(PUBLIC_LOCATION, prefix=f"{prefix}-public", public_url=public)
    _put_location(local, body)
    try:
        install = _tls_install(local, PUBLIC_LOCATION, ca_cert=tls.ca_cert)
        name = _backup(install, app_ns, PUBLIC_LOCATION)
        url = urlsplit(velero.download_url(install, "BackupContents", name))
        assert url.hostname == host and url.hostname not in ("localhost", "127.0.0.1", "::1")
        objects = read_backup_tarball(velero.download(install, "BackupContents", name))
        assert _config_map(objects, app_ns)["data"]["TLS"] == "yes"
    finally:
        _drop_location(local, PUBLIC_LOCATION)
