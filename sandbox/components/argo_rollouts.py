"""Argo Rollouts' controller for the main cluster, run out of cluster; opt-in.

Built from the Go module `github.com/argoproj/argo-rollouts` at the CRDs' version (the wrapper
module sandbox/argo/go.mod carries upstream's replace directives) into the cache folder, with the
`kubectl-argo-rollouts` plugin beside it. Upstream listens on 0.0.0.0 for its metrics and healthz
ports (a constant, no flag); the network rule wants loopback, so that one constant is changed at
build time (sandbox/gopatch.py). A cold build takes about 2 minutes on this machine.

It runs as a team would run it, only outside the cluster: ServiceAccount argo-rollouts/argo-rollouts
bound to the release's own ClusterRole (manifests/role of the module), a bound token in a 0600 file
its kubeconfig points at (`tokenFile`, re-read as `sandbox up` renews it). No leader election: one
process, by its pid file (POD_NAMESPACE argo-rollouts, for its notification config). Metrics on
127.0.0.1:38090 (KYB_ARGO_METRICS_PORT), healthz on 127.0.0.1:38091 (KYB_ARGO_HEALTHZ_PORT). Every
HTTP(S) address outside loopback it would dial (a web metric, a foreign Prometheus) goes to a proxy
that cannot exist, as for Traefik.

Opt-in: the default platform neither builds nor starts it (sandbox/platform.py OPTIONAL).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import yaml

from sandbox import gopatch, sa_token
from sandbox.argo import crds as argo
from sandbox.components import Status
from sandbox.components.cluster import Cluster
from sandbox.components.traefik import NOWHERE, PROXY_VARS, apply, refuse_outside_loopback
from sandbox.errors import PlatformError
from sandbox.files import write_file
from sandbox.install import go_build
from sandbox.procs import Daemon, run
from sandbox.settings import HOST, Settings

NAMESPACE = "argo-rollouts"
ACCOUNT = "argo-rollouts"
MODULE_DIR = Path(argo.__file__).parent  # the wrapper go.mod
PACKAGE = f"{argo.MODULE}/cmd/rollouts-controller"
PLUGIN = f"{argo.MODULE}/cmd/kubectl-argo-rollouts"
LDFLAGS = f"-X {argo.MODULE}/utils/version.version={argo.VERSION}"
LISTEN = gopatch.SourcePatch(
    component="argo-rollouts",
    module=argo.MODULE,
    version=argo.VERSION,
    file="controller/controller.go",
    old='listenAddr                         = "0.0.0.0:%d"',
    new=f'listenAddr                         = "{HOST}:%d"',
    package=PACKAGE,
    binary="rollouts-controller",
    where="sandbox/components/argo_rollouts.py",
)
PROBE = "/apis/argoproj.io/v1alpha1/rollouts?limit=1"  # what its token must be allowed to read


def manifests() -> list[dict[str, Any]]:
    """Namespace, ServiceAccount, and the release's ClusterRole and ClusterRoleBinding."""
    folder = argo.module_dir() / "manifests"
    role = yaml.safe_load((folder / "role" / "argo-rollouts-clusterrole.yaml").read_text())
    binding_file = folder / "cluster-install" / "argo-rollouts-clusterrolebinding.yaml"
    binding = yaml.safe_load(binding_file.read_text())
    account = yaml.safe_load((folder / "base" / "argo-rollouts-sa.yaml").read_text())
    account["metadata"]["namespace"] = NAMESPACE
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    return [namespace, account, role, binding]


class ArgoRollouts:
    """`rollouts-controller --kubeconfig` against the main cluster."""

    name = "argo-rollouts"

    def __init__(self, settings: Settings, cluster: Cluster) -> None:
        self.settings = settings
        self.cluster = cluster
        self.metrics_port = settings.ports.argo_metrics
        self.healthz_port = settings.ports.argo_healthz
        self.metrics_url = f"http://{HOST}:{self.metrics_port}/metrics"
        self.state = settings.dir(self.name)
        self.token_file = self.state / "token"
        self.ca_file = self.state / "apiserver-ca.crt"
        self.kubeconfig = self.state / "kubeconfig"
        self.daemon = Daemon("rollouts-controller", self.state)
        self.build_seconds: dict[str, float] = {}

    @property
    def program(self) -> Path:
        """The cached controller binary."""
        return self.settings.argo_rollouts_bin / LISTEN.binary

    @property
    def plugin(self) -> Path:
        """The cached `kubectl-argo-rollouts` binary (run it as `kubectl-argo-rollouts get ...`)."""
        return self.settings.argo_rollouts_bin.with_name(
            self.settings.argo_rollouts_bin.name + "-cli"
        ) / ("kubectl-argo-rollouts")

    def install(self) -> None:
        """Build the controller (patched to listen on loopback) and the plugin, unless cached."""
        bin_dir = self.settings.argo_rollouts_bin
        if not LISTEN.is_built(bin_dir):
            secs = gopatch.build(LISTEN, MODULE_DIR, bin_dir, LDFLAGS)
            if secs:
                self.build_seconds[f"argo-rollouts v{argo.VERSION}"] = secs
        if not self.plugin.is_file():
            wants = (self.plugin.name,)
            secs = go_build(self.name, MODULE_DIR, [PLUGIN], self.plugin.parent, LDFLAGS, wants)
            if secs:
                self.build_seconds[f"kubectl-argo-rollouts v{argo.VERSION}"] = secs

    def _api(self) -> Any:
        from kubernetes import config

        if not self.cluster.kubeconfig.exists():
            raise PlatformError(self.name, "the main cluster is not up", "sandbox up")
        return config.new_client_from_config(str(self.cluster.kubeconfig))

    def _write_kubeconfig(self) -> str:
        host, ca = sa_token.apiserver(self.cluster.kubeconfig)
        from urllib.parse import urlsplit

        refuse_outside_loopback("the apiserver", urlsplit(host).hostname or "")
        write_file(self.ca_file, ca, 0o644)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "kyb",
                    "cluster": {"server": host, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [{"name": ACCOUNT, "user": {"tokenFile": str(self.token_file)}}],
            "contexts": [
                {
                    "name": "argo",
                    "context": {"cluster": "kyb", "user": ACCOUNT, "namespace": NAMESPACE},
                }
            ],
            "current-context": "argo",
        }
        text = yaml.safe_dump(config, sort_keys=False)
        write_file(self.kubeconfig, text, 0o600)
        return text

    def _env(self) -> dict[str, str]:
        return {
            **dict.fromkeys(PROXY_VARS, NOWHERE),
            "NO_PROXY": "",
            "no_proxy": "",
            "POD_NAMESPACE": NAMESPACE,  # its leader-election Lease and notification config
        }

    def _argv(self) -> list[str]:
        return [
            str(self.program),
            f"--kubeconfig={self.kubeconfig}",
            f"--metricsPort={self.metrics_port}",
            f"--healthzPort={self.healthz_port}",
            "--loglevel=info",
            # one process per state folder by construction (its pid file): nothing to elect, and
            # a restarted controller works at once instead of waiting out the old one's Lease
            "--leader-elect=false",
        ]

    def _answers(self) -> bool:
        try:
            url = f"http://{HOST}:{self.healthz_port}/healthz"
            return httpx.get(url, timeout=2, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    def up(self) -> None:
        """Apply its RBAC, mint its token, start it unless ours runs as configured."""
        argo.install(self.cluster.kubeconfig)  # the CRDs (a no-op apply when there)
        with self._api() as api:
            apply(api, manifests())
        sa_token.ensure_token(self.cluster.kubeconfig, self.token_file, NAMESPACE, ACCOUNT, PROBE)
        text = self._write_kubeconfig()
        digest = hashlib.sha256(
            (
                text + json.dumps([self._argv(), self._env(), self.program.stat().st_mtime_ns])
            ).encode()
            + self.ca_file.read_bytes()
            + LISTEN.stamp(self.settings.argo_rollouts_bin).read_bytes()
        ).hexdigest()
        stamp = self.state / "controller.sha256"
        if self.daemon.pid() is not None and (not stamp.exists() or stamp.read_text() != digest):
            self.daemon.stop()  # a new cluster, port or build: a new process serves it
        stamp.write_text(digest)
        self.daemon.ensure(
            self._argv,
            self._answers,
            f"Argo Rollouts' healthz on 127.0.0.1:{self.healthz_port}",
            self.healthz_port,
            "stop that process or set KYB_ARGO_HEALTHZ_PORT (and KYB_ARGO_METRICS_PORT)",
            env=self._env(),
        )

    def down(self) -> None:
        """Stop the controller if we started it (its RBAC and CRDs stay)."""
        self.daemon.stop()

    def version(self) -> str:
        """What the controller binary says it is."""
        return run([str(self.program), "--version"], self.name).strip()

    def status(self) -> Status:
        """Running or stopped, with its metrics URL."""
        running = bool(self.daemon.pid()) and self._answers()
        detail = f"v{argo.VERSION}, controller on kyb (opt-in: sandbox up argo-rollouts)"
        return Status(self.name, "running" if running else "stopped", self.metrics_url, detail)

    def env(self) -> dict[str, str]:
        """Where its metrics are, and the plugin (when up)."""
        if not self.daemon.pid():
            return {}
        return {"KYB_ARGO_ROLLOUTS_METRICS_URL": self.metrics_url}
