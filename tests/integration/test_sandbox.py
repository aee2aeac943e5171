"""`sandbox` keeps its promises: idempotent up, down stops only its own, clear errors."""

from __future__ import annotations

import shutil
import socket
import tempfile
from pathlib import Path

import httpx
import pytest
import yaml

from sandbox.cluster import kwok_config
from sandbox.components.registry import Registry
from sandbox.errors import PlatformError
from sandbox.platform import Platform
from sandbox.settings import Settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_second_up_reuses_running_services(platform: Platform) -> None:
    daemons = [
        platform.registry,
        platform.s3,
        platform.prometheus,
        platform.prefect,
        platform.velero,
        platform.dr_velero,
        platform.podrunner,
        platform.dr_podrunner,
        platform.traefik,
    ]
    before = [c.daemon.pid() for c in daemons]
    platform.up(say=lambda _m: None)
    after = [c.daemon.pid() for c in daemons]
    assert before == after and all(before)
    rows = platform.status()
    optional = {c.name for c in platform.optional}  # opt-in: listed last, up only when asked
    assert [row.name for row in rows][-len(optional) :] == ["argo-rollouts", "kube-worker"]
    default = [row for row in rows if row.name not in optional]
    assert all(row.state in ("running", "external") for row in default)
    names = [row.name for row in default]
    assert names[:3] == ["docker", "registry", "s3"]
    assert names[-8:] == [
        "cluster",
        "dr-cluster",
        "podrunner",
        "dr-podrunner",
        "prometheus-pods",
        "velero",
        "dr-velero",
        "traefik",
    ]


def test_env_points_at_both_clusters_and_the_store(platform: Platform) -> None:
    env = platform.env()
    assert env["KUBECONFIG"] == str(platform.settings.kubeconfig)
    assert env["KYB_DR_KUBECONFIG"] == str(platform.settings.dr_kubeconfig)
    assert env["KYB_S3_ENDPOINT"] == f"http://127.0.0.1:{platform.settings.ports.s3}"
    assert not any("secret" in key.lower() or "key_id" in key.lower() for key in env)


def test_taken_port_fails_naming_component_and_fix(platform, tmp_path, monkeypatch) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    monkeypatch.setenv("KYB_SANDBOX_HOME", str(tmp_path))
    monkeypatch.setenv("KYB_REGISTRY_PORT", str(port))
    try:
        with pytest.raises(PlatformError) as err:
            Registry(Settings()).up()
    finally:
        holder.close()
    text = str(err.value)
    assert text.startswith("[registry]") and str(port) in text and "KYB_REGISTRY_PORT" in text


def test_down_stops_its_own_processes_and_nothing_else(platform, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KYB_SANDBOX_HOME", str(tmp_path))
    monkeypatch.setenv("KYB_REGISTRY_PORT", str(_free_port()))
    second = Registry(Settings())
    second.up()
    pid = second.daemon.pid()
    assert pid and httpx.get(f"http://{second.address}/v2/").status_code == 401
    second.down()
    assert second.daemon.pid() is None
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://{second.address}/v2/", timeout=2)
    # the platform's own registry, started by another Settings, still serves
    assert httpx.get(f"http://{platform.registry.address}/v2/").status_code == 401


def test_bad_port_setting_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setenv("KYB_PROMETHEUS_PORT", "ninety")
    with pytest.raises(ValueError, match="KYB_PROMETHEUS_PORT"):
        Settings()


def test_kwok_config_keeps_every_address_on_loopback(platform: Platform) -> None:
    docs = list(yaml.safe_load_all(kwok_config.render(platform.settings)))
    kinds = [d["kind"] for d in docs]
    assert kinds[0] == "KwokctlConfiguration"
    stages = [d["metadata"]["name"] for d in docs if d["kind"] == "Stage"]
    assert stages == [
        "node-initialize",
        "node-heartbeat-with-lease",
        "pod-ready",
        "pod-complete",
        "pod-delete",
        "pod-not-ready",
        "pod-probe-ready",
        "pod-probe-start",
        "pod-ready-again",
        "pod-run",
    ]
    opts = docs[0]["options"]
    assert opts["bindAddress"] == "127.0.0.1" and opts["runtime"] == "binary"
    kwok_args = {
        a["key"]: a["value"]
        for patch in docs[0]["componentsPatches"]
        if patch["name"] == "kwok-controller"
        for a in patch["extraArgs"]
    }
    assert kwok_args["cidr"].startswith("127.") and kwok_args["node-ip"].startswith("127.")


def test_dr_cluster_config_differs_from_the_main_one_only_in_ports(platform: Platform) -> None:
    main = yaml.safe_load_all(kwok_config.render(platform.settings))
    dr = yaml.safe_load_all(kwok_config.render(platform.settings, platform.settings.dr_cluster))
    main_docs, dr_docs = list(main), list(dr)
    port_keys = {k for k in main_docs[0]["options"] if k.endswith("Port")}
    assert len(port_keys) == 6
    main_ports = {main_docs[0]["options"].pop(k) for k in port_keys}
    dr_ports = {dr_docs[0]["options"].pop(k) for k in port_keys}
    assert main_docs == dr_docs and not main_ports & dr_ports
    assert platform.dr_cluster.kubeconfig != platform.cluster.kubeconfig


def test_first_start_from_an_empty_state_folder(platform, monkeypatch) -> None:
    """A new machine's first `sandbox up`: each daemon starts on the first try from no state.

    Docker too, on its own socket and data root; each is then seen running, and stopped after.
    """
    from sandbox.components.docker import Docker
    from sandbox.components.prometheus import Prometheus

    # a short path: containerd's unix socket lives under it (at most 108 bytes)
    tmp_path = Path(tempfile.mkdtemp(prefix="kyb-", dir="/tmp"))
    monkeypatch.setenv("KYB_SANDBOX_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("KYB_DOCKER_SOCKET", str(tmp_path / "docker.sock"))
    monkeypatch.setenv("KYB_REGISTRY_PORT", str(_free_port()))
    monkeypatch.setenv("KYB_PROMETHEUS_PORT", str(_free_port()))
    settings = Settings()
    assert not settings.home.exists()
    started = [Docker(settings), Registry(settings), Prometheus(settings)]
    try:
        for component in started:
            component.install()
            component.up()
            assert component.status().state == "running", component.name
            assert component.daemon.exited() is None
    finally:
        for component in reversed(started):
            component.down()
        shutil.rmtree(tmp_path, ignore_errors=True)
    assert all(c.daemon.pid() is None for c in started)


def test_two_builds_into_one_cache_folder_at_once_leave_a_working_binary(tmp_path) -> None:
    """Two `sandbox up` at once once deleted each other's half-done Velero build: now one waits."""
    import threading

    from sandbox.install import go_build
    from sandbox.procs import run

    module = tmp_path / "hello"
    module.mkdir()
    (module / "go.mod").write_text("module example.test/hello\n\ngo 1.22\n")
    (module / "main.go").write_text(
        'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello") }\n'
    )
    out = tmp_path / "cache" / "hello-v1"
    seconds: list[float] = []
    errors: list[BaseException] = []

    def build() -> None:
        try:
            seconds.append(go_build("hello", module, ["."], out, wants=("hello",)))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert sorted(s == 0.0 for s in seconds) == [False, True]  # one built, the other found it
    assert run([str(out / "hello")], "hello", "-").strip() == "hello"
    assert not out.with_name("hello-v1.partial").exists()
