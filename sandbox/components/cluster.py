"""The Kubernetes cluster: control plane built from Go modules, run by kwokctl --runtime binary."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import ssl
import time
from pathlib import Path

import httpx
import yaml

from sandbox.cluster import apiserver_patch, kwok_config
from sandbox.components import Status
from sandbox.errors import PlatformError
from sandbox.install import go_build
from sandbox.procs import port_open, run, wait_until
from sandbox.settings import HOST, K8S_VERSION, KWOK_VERSION, KwokCluster, Settings

MODULE_DIR = Path(kwok_config.__file__).parent  # the wrapper go.mod that builds Kubernetes
K8S_PACKAGES = {  # binary name -> Go main package
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
    "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
    "kubectl": "k8s.io/kubernetes/cmd/kubectl",
    "etcd": "go.etcd.io/etcd/server/v3",  # go names this binary "server"; renamed below
}
KWOK_PACKAGES = {"kwok": "sigs.k8s.io/kwok/cmd/kwok", "kwokctl": "sigs.k8s.io/kwok/cmd/kwokctl"}
NODES = 2
NODE_LEASES = "kube-node-lease"  # the namespace of the nodes' heartbeat leases


def _version_ldflags() -> str:
    major, minor, _ = K8S_VERSION.split(".")
    pairs = {"gitVersion": f"v{K8S_VERSION}", "gitMajor": major, "gitMinor": minor}
    pkgs = ["k8s.io/component-base/version", "k8s.io/client-go/pkg/version"]
    flags = [f"-X {p}.{k}={v}" for p in pkgs for k, v in pairs.items()]
    return " ".join([*flags, "-X k8s.io/component-base/version.gitTreeState=clean"])


def _running(pid: int) -> bool:
    """Whether a process runs (a zombie does not)."""
    try:
        return pid > 0 and Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _stop(pid: int) -> None:
    """Stop a process: SIGTERM, then SIGKILL after 10 s (kube-apiserver drains for a minute).

    Waits until it is gone for kwokctl too (it asks kill -0), not a zombie whose threads exit.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if not Path(f"/proc/{pid}").exists():
                return
            time.sleep(0.1)  # bounded: a process we signalled
    raise PlatformError("cluster", f"process {pid} did not stop after SIGKILL", "see its log")


class Cluster:
    """kube-apiserver, kube-controller-manager, kube-scheduler, etcd and kwok on 127.0.0.1.

    One class serves the main cluster ("cluster", kwokctl name kyb) and the disaster-recovery one
    ("dr-cluster", kyb-dr): same binaries and stages, own ports, kubeconfig and etcd data.
    """

    def __init__(
        self, settings: Settings, cluster: KwokCluster | None = None, name: str = "cluster"
    ) -> None:
        self.settings = settings
        self.name = name
        self.cluster = cluster or settings.main_cluster
        self.state = settings.dir("kwok")  # KWOK_WORKDIR, shared: clusters/<name>/ each
        self.is_main = self.cluster.name == settings.main_cluster.name
        # the main cluster keeps its historical file names, so its config stamp stays valid
        prefix = "" if self.is_main else f"{self.cluster.name}."
        self.config_file = self.state / f"{prefix}kwokctl.yaml"
        self.stamp = self.state / f"{prefix}config.sha256"
        self.merged_kubeconfig = self.state / f"{prefix}merged-kubeconfig.yaml"
        self.kubeconfig = self.cluster.kubeconfig
        self.server = f"https://{HOST}:{self.cluster.apiserver}"
        self.build_seconds: dict[str, float] = {}

    # ---- install -------------------------------------------------------------------------------
    def _missing(self, folder: Path, names: list[str]) -> bool:
        return not all((folder / n).is_file() for n in names)

    def install(self) -> None:
        """Build the Kubernetes and kwok binaries into the cache unless they are there already.

        kube-apiserver is built on its own, patched to accept loopback endpoint addresses
        (sandbox/cluster/apiserver_patch.py); an unpatched one is rebuilt.
        """
        k8s, kwok = self.settings.k8s_bin, self.settings.kwok_bin
        others = {n: p for n, p in K8S_PACKAGES.items() if n != "kube-apiserver"}
        if self._missing(k8s, list(others)):
            secs = go_build(self.name, MODULE_DIR, list(others.values()), k8s, _version_ldflags())
            (k8s / "server").rename(k8s / "etcd")
            self.build_seconds[f"kubernetes v{K8S_VERSION}"] = secs
        if not apiserver_patch.is_patched(k8s):
            secs = apiserver_patch.build(self.name, MODULE_DIR, k8s, _version_ldflags())
            self.build_seconds[f"kube-apiserver v{K8S_VERSION} (loopback endpoints)"] = secs
        if self._missing(kwok, list(KWOK_PACKAGES)):
            pkgs = [f"{p}@v{KWOK_VERSION}" for p in KWOK_PACKAGES.values()]
            self.build_seconds[f"kwok v{KWOK_VERSION}"] = go_build(self.name, None, pkgs, kwok)

    # ---- run -----------------------------------------------------------------------------------
    def _kwokctl(self, *args: str, timeout: float = 300) -> str:
        env = {**os.environ, "KWOK_WORKDIR": str(self.state)}
        argv = [str(self.settings.kwok_bin / "kwokctl"), "--name", self.cluster.name, *args]
        return run(
            argv,
            self.name,
            "see the component logs under " + str(self.state),
            env=env,
            timeout=timeout,
        )

    def _answers(self) -> bool:
        if not self.kubeconfig.exists():
            return False
        pki = self.kubeconfig.parent / "pki"
        try:
            tls = ssl.create_default_context(cafile=str(pki / "ca.crt"))
            tls.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
            resp = httpx.get(f"{self.server}/readyz", verify=tls, timeout=3)
        except (httpx.HTTPError, OSError):
            return False
        return resp.status_code == 200

    def _all_alive(self) -> bool:
        """Every component kwokctl started still runs (none exited behind our back)."""
        pids = list((self.kubeconfig.parent / "pids").glob("*.pid"))
        return bool(pids) and all(Path(f"/proc/{p.read_text().strip()}").exists() for p in pids)

    def _restage(self, config: str) -> bool:
        """Give a running cluster new kwok stages in place, when nothing but its stages changed.

        kwok-controller reads its stages from the cluster's kwok.yaml: they are replaced there and
        that one process is restarted (kwokctl starts only what is not running), so the cluster's
        objects, certificates and the other components stay. Returns False when more changed.
        """

        def split(text: str) -> tuple[list[dict], list[dict]]:
            docs = [d for d in yaml.safe_load_all(text) if d]
            return [d for d in docs if d.get("kind") != "Stage"], [
                d for d in docs if d.get("kind") == "Stage"
            ]

        cluster_dir = self.kubeconfig.parent
        saved, pidfile = cluster_dir / "kwok.yaml", cluster_dir / "pids" / "kwok-controller.pid"
        if not (self.config_file.exists() and saved.exists() and pidfile.exists()):
            return False
        (old_rest, _), (new_rest, stages) = split(self.config_file.read_text()), split(config)
        if old_rest != new_rest:
            return False
        rest, _ = split(saved.read_text())
        saved.write_text(yaml.safe_dump_all([*rest, *stages], sort_keys=False))
        self._restart(["kwok-controller"])
        self.config_file.write_text(config)
        return True

    def _stale(self) -> list[str]:
        """Components whose binary was replaced since they started (a rebuilt kube-apiserver)."""
        stale = []
        for pidfile in (self.kubeconfig.parent / "pids").glob("*.pid"):
            with contextlib.suppress(OSError, ValueError):
                exe = os.readlink(f"/proc/{int(pidfile.read_text().strip())}/exe")
                if exe.endswith(" (deleted)"):
                    stale.append(pidfile.stem)
        return sorted(stale)

    def _restart(self, names: list[str]) -> None:
        """Stop these components of the cluster (processes kwokctl started), then start them.

        kwokctl starts only the components that do not run; the others and etcd's data stay.
        """
        try:
            for name in names:
                pidfile = self.kubeconfig.parent / "pids" / f"{name}.pid"
                pid = int(pidfile.read_text().strip() or 0) if pidfile.exists() else 0
                if _running(pid) and name.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    _stop(pid)  # ours: kwokctl started it for this cluster
            if "kwok-controller" in names:
                self._release_node_leases()
        finally:  # whatever happened, what is not running is started again
            self._kwokctl("start", "cluster", "--timeout", "3m", "--wait", "2m")

    def _release_node_leases(self) -> None:
        """Delete the fake nodes' leases, held by the kwok-controller that just stopped.

        A new kwok-controller leaves nodes alone while another holder's lease runs (200 s here),
        so without this the restaged cluster would not move a pod for minutes. Every node of
        these clusters is kwok's (--manage-all-nodes); it creates the leases again at once.
        """
        from kubernetes import client, config

        leases = client.CoordinationV1Api(config.new_client_from_config(str(self.kubeconfig)))
        for lease in leases.list_namespaced_lease(NODE_LEASES, _request_timeout=10).items:
            with contextlib.suppress(client.ApiException):  # gone already: fine
                leases.delete_namespaced_lease(
                    lease.metadata.name, NODE_LEASES, _request_timeout=10
                )

    def up(self) -> None:
        """Create the cluster, or start it again if it exists with the same configuration.

        A change of kwok stages only is applied in place (see _restage); any other change of the
        configuration rebuilds the cluster from scratch. Addresses outside 127.0.0.0/8 are refused.
        """
        kwok_config.check_addresses(self.settings)
        config = kwok_config.render(self.settings, self.cluster)
        digest = hashlib.sha256(config.encode()).hexdigest()
        cluster_dir = self.kubeconfig.parent
        same = self.stamp.exists() and self.stamp.read_text() == digest
        if not same and cluster_dir.exists() and self._answers() and self._restage(config):
            self.stamp.write_text(digest)
            same = True
        if same and self._answers() and self._all_alive():
            if stale := self._stale():  # e.g. the patched kube-apiserver replaced the old one
                self._restart(stale)
            self._ensure_nodes()
            return
        if same and self._answers():  # a component died: restart them all, data stays
            self._kwokctl("stop", "cluster")
        if cluster_dir.exists() and not same:
            self.delete()  # configuration changed: rebuild the cluster from scratch
        if port_open(self.cluster.apiserver) and not self._answers():
            pre = self.cluster.port_vars
            raise PlatformError(
                self.name,
                f"port {HOST}:{self.cluster.apiserver} is taken by another process",
                f"stop it or set {pre}APISERVER_PORT (and the other {pre}*_PORT) to free ports",
            )
        if cluster_dir.exists():
            self._kwokctl("start", "cluster", "--timeout", "3m", "--wait", "2m")
        else:
            self.config_file.write_text(config)
            self._kwokctl(
                "create",
                "cluster",
                "--runtime",
                "binary",
                "--config",
                str(self.config_file),
                "--kubeconfig",
                str(self.merged_kubeconfig),
                "--timeout",
                "5m",
                "--wait",
                "2m",
            )
        self.stamp.write_text(digest)
        if not self._answers():
            raise PlatformError(self.name, "the apiserver does not answer after start", "see logs")
        self._ensure_nodes()

    def _ensure_nodes(self) -> None:
        """Create the fake nodes (kwok manages nodes annotated kwok.x-k8s.io/node=fake)."""
        from kubernetes import client, config

        api = client.CoreV1Api(config.new_client_from_config(str(self.kubeconfig)))
        existing = {n.metadata.name for n in api.list_node().items}
        for i in range(NODES):
            name = f"kwok-node-{i}"
            if name in existing:
                continue
            api.create_node(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "annotations": {"kwok.x-k8s.io/node": "fake"},
                        "labels": {
                            "type": "kwok",
                            "kubernetes.io/hostname": name,
                            "kubernetes.io/os": "linux",
                            "kubernetes.io/arch": "amd64",
                        },
                    },
                    "status": {
                        "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                        "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                    },
                }
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready = [
                n
                for n in api.list_node().items
                if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
            ]
            if len(ready) >= NODES:
                return
            time.sleep(0.5)  # bounded: kwok marks nodes Ready within a second or two
        raise PlatformError(self.name, "kwok did not mark the fake nodes Ready in 60s", "see logs")

    def down(self) -> None:
        """Stop the cluster's processes (etcd data stays, so the next `up` is quick)."""
        if (self.kubeconfig.parent).exists() and (self.settings.kwok_bin / "kwokctl").exists():
            self._kwokctl("stop", "cluster")

    def delete(self) -> None:
        """Stop the cluster and remove its state."""
        if (self.settings.kwok_bin / "kwokctl").exists():
            with contextlib.suppress(PlatformError):
                self._kwokctl("delete", "cluster")
        shutil.rmtree(self.kubeconfig.parent, ignore_errors=True)
        port = self.cluster.apiserver
        wait_until(lambda: not port_open(port), 30, f"apiserver to release port {port}")

    def status(self) -> Status:
        """Running or stopped, with the API server URL."""
        state = "running" if self._answers() else "stopped"
        detail = f"Kubernetes v{K8S_VERSION}, kwok nodes, {self.cluster.name}"
        return Status(self.name, state, self.server, detail)

    def env(self) -> dict[str, str]:
        """KUBECONFIG (main cluster) or KYB_DR_KUBECONFIG (the DR cluster) for clients."""
        return {"KUBECONFIG" if self.is_main else "KYB_DR_KUBECONFIG": str(self.kubeconfig)}
