"""Velero servers out of cluster: one per kwok cluster, both backing up to the S3 store."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from sandbox.components import Status
from sandbox.components.cluster import Cluster
from sandbox.components.s3store import S3Store
from sandbox.crds import wait_established
from sandbox.errors import PlatformError
from sandbox.install import go_build
from sandbox.procs import Daemon, run
from sandbox.settings import HOST, VELERO_AWS_VERSION, VELERO_VERSION, Settings
from sandbox.velero import manifests

MODULE_DIR = Path(manifests.__file__).parent  # the wrapper go.mod that builds Velero
VELERO_PACKAGE = "github.com/vmware-tanzu/velero/cmd/velero"
PLUGIN = "velero-plugin-for-aws"
PLUGIN_PACKAGE = f"github.com/vmware-tanzu/{PLUGIN}/{PLUGIN}@v{VELERO_AWS_VERSION}"
# -X sets the version `velero version` reports, and switches off controller-runtime's own metrics
# server: Velero gives no flag for it and it would bind :8080 on every interface (and clash between
# the two servers). Velero's metrics stay on --metrics-address.
LDFLAGS = (
    f"-X github.com/vmware-tanzu/velero/pkg/buildinfo.Version=v{VELERO_VERSION} "
    "-X sigs.k8s.io/controller-runtime/pkg/metrics/server.DefaultBindAddress=0"
)
FIELD_MANAGER = "kyb-sandbox"
# Store validation every 10 s. Backup sync runs on a fixed one-minute tick inside Velero (a const);
# a 10 s --backup-sync-period makes every tick sync, so the DR cluster sees a backup within ~60 s.
SYNC_SECONDS = 10
AVAILABLE_TIMEOUT = 90.0  # seconds for the storage location to turn Available after a start


class Velero:
    """`velero server` for one cluster of the platform (main: "velero", DR: "dr-velero")."""

    def __init__(self, settings: Settings, cluster: Cluster, s3: S3Store) -> None:
        self.settings = settings
        self.cluster = cluster
        self.s3 = s3
        self.name = "velero" if cluster.is_main else "dr-velero"
        ports = settings.ports
        self.metrics_port = ports.velero_metrics if cluster.is_main else ports.dr_velero_metrics
        self.profiler_port = ports.velero_profiler if cluster.is_main else ports.dr_velero_profiler
        self.metrics_url = f"http://{HOST}:{self.metrics_port}/metrics"
        self.state = settings.dir(self.name)
        self.daemon = Daemon(self.name, self.state)
        self.build_seconds: dict[str, float] = {}

    @property
    def program(self) -> Path:
        """The cached velero binary."""
        return self.settings.velero_bin / "velero"

    # ---- install -------------------------------------------------------------------------------
    def install(self) -> None:
        """Build velero and the AWS plugin into the cache unless they are there already."""
        if not self.program.is_file():
            secs = go_build(
                self.name, MODULE_DIR, [VELERO_PACKAGE], self.program.parent, LDFLAGS, ("velero",)
            )
            self.build_seconds[f"velero v{VELERO_VERSION}"] = secs
        plugins = self.settings.velero_plugins  # only plugin executables: it is --plugin-dir
        if not (plugins / PLUGIN).is_file():
            secs = go_build(self.name, None, [PLUGIN_PACKAGE], plugins)
            self.build_seconds[f"{PLUGIN} v{VELERO_AWS_VERSION}"] = secs

    def crds(self) -> list[dict[str, Any]]:
        """Velero's CustomResourceDefinitions, as the built binary generates them (cached)."""
        cached = self.settings.velero_bin / "crds.json"
        if not cached.is_file():
            out = run(
                [str(self.program), "install", "--crds-only", "--dry-run", "-o", "json"],
                self.name,
                "run `sandbox up` to build velero",
            )
            cached.write_text(out)
        items = json.loads(cached.read_text())["items"]
        for crd in items:
            crd.pop("status", None)
            crd["metadata"].pop("creationTimestamp", None)
        return items

    # ---- cluster objects -----------------------------------------------------------------------
    def _api(self) -> Any:
        from kubernetes import config

        return config.new_client_from_config(str(self.cluster.kubeconfig))

    def _apply(self, api: Any, objects: list[dict[str, Any]]) -> None:
        """Server-side apply objects in order (idempotent; the store's keys are never logged)."""
        from kubernetes.dynamic import DynamicClient

        dyn = DynamicClient(api)
        for obj in objects:
            resource = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
            dyn.server_side_apply(
                resource,
                body=obj,
                namespace=obj["metadata"].get("namespace"),
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
            )

    def _wait_established(self, api: Any, names: list[str]) -> None:
        wait_established(api, names, f"{self.name}: Velero's CRDs")

    def ensure_objects(self) -> None:
        """Apply Velero's CRDs, namespace, credentials Secret and default storage location."""
        key_id, secret_key = self.s3.credentials()
        with self._api() as api:
            crds = self.crds()
            self._apply(api, crds)
            self._wait_established(api, [c["metadata"]["name"] for c in crds])
            self._apply(
                api,
                [
                    manifests.namespace(),
                    manifests.credentials_secret(key_id, secret_key),
                    manifests.storage_location(self.s3.endpoint, self.s3.bucket, self.s3.region),
                    manifests.server_deployment(VELERO_VERSION),
                ],
            )

    # ---- run -----------------------------------------------------------------------------------
    def argv(self) -> list[str]:
        """The `velero server` command line."""
        return [
            str(self.program),
            "server",
            "--kubeconfig",
            str(self.cluster.kubeconfig),
            "--namespace",
            manifests.NAMESPACE,
            "--plugin-dir",
            str(self.settings.velero_plugins),
            "--metrics-address",
            f"{HOST}:{self.metrics_port}",
            "--profiler-address",
            f"{HOST}:{self.profiler_port}",
            "--backup-sync-period",
            f"{SYNC_SECONDS}s",
            "--store-validation-frequency",
            f"{SYNC_SECONDS}s",
        ]

    def _digest(self) -> str:
        """Fingerprint of what the running server was started with: argv and kubeconfig."""
        data = "\0".join(self.argv()).encode() + self.cluster.kubeconfig.read_bytes()
        return hashlib.sha256(data).hexdigest()

    def _env(self) -> dict[str, str]:
        # Velero writes the storage location's credentials file (and backup tarballs) under
        # TMPDIR: keep them in this server's own folder, not in a /tmp shared with the DR server.
        tmp = self.state / "tmp"
        tmp.mkdir(mode=0o700, exist_ok=True)
        return {"TMPDIR": str(tmp)}

    def _answers(self) -> bool:
        try:
            return httpx.get(self.metrics_url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def location_status(self) -> tuple[str | None, float]:
        """The default storage location's phase (Available, Unavailable, None.

        not validated) and the epoch second of its last validation (0 if never).
        """
        import urllib3
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            with self._api() as api:
                bsl = client.CustomObjectsApi(api).get_namespaced_custom_object(
                    "velero.io",
                    "v1",
                    manifests.NAMESPACE,
                    "backupstoragelocations",
                    manifests.LOCATION,
                    _request_timeout=5,
                )
        except (ApiException, OSError, urllib3.exceptions.HTTPError):
            return None, 0.0
        status = bsl.get("status") or {}
        stamp = status.get("lastValidationTime")
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else 0.0
        return status.get("phase"), when

    def up(self) -> None:
        """Apply the objects, start the server unless ours runs, wait for an Available location."""
        if not self.cluster.kubeconfig.exists():
            raise PlatformError(self.name, f"{self.cluster.name} is not up", "run `sandbox up`")
        self.ensure_objects()
        # a rebuilt cluster has new certificates, a changed flag needs a new process: restart then
        stamp, digest = self.state / "server.sha256", self._digest()
        if self.daemon.pid() is not None and (not stamp.exists() or stamp.read_text() != digest):
            self.daemon.stop()
        stamp.write_text(digest)
        pre = self.cluster.cluster.port_vars
        # a fresh server must validate the store itself; a running one has done so lately
        since = time.time() - (1 if self.daemon.pid() is None else 3 * SYNC_SECONDS)
        self.daemon.ensure(
            self.argv,
            self._answers,
            f"velero server metrics on {self.metrics_url}",
            self.metrics_port,
            f"stop that process or set {pre}VELERO_METRICS_PORT to a free port",
            env=self._env(),
        )
        deadline = time.monotonic() + AVAILABLE_TIMEOUT
        while True:
            phase, validated = self.location_status()
            if phase == "Available" and validated >= int(since):  # the API keeps whole seconds
                return
            if self.daemon.pid() is None:
                raise PlatformError(self.name, "velero server exited", f"see {self.daemon.logfile}")
            if time.monotonic() > deadline:
                raise PlatformError(
                    self.name,
                    f"storage location {manifests.LOCATION!r} was not validated Available within "
                    f"{AVAILABLE_TIMEOUT:.0f}s (phase {phase or 'none'}, store {self.s3.endpoint})",
                    f"see {self.daemon.logfile} and check that `sandbox up s3` works",
                )
            time.sleep(1)  # bounded by the deadline: the server validates every SYNC_SECONDS

    def down(self) -> None:
        """Stop the velero server if we started it (backups stay in the store)."""
        self.daemon.stop()

    def status(self) -> Status:
        """Running or stopped, with the metrics URL and the storage location's phase."""
        running = bool(self.daemon.pid()) and self._answers()
        detail = f"v{VELERO_VERSION} on {self.cluster.cluster.name}"
        if running:
            detail += f", location {self.location_status()[0] or 'not validated'}"
        return Status(self.name, "running" if running else "stopped", self.metrics_url, detail)

    def env(self) -> dict[str, str]:
        """The metrics URL of this server."""
        var = "KYB_VELERO_METRICS_URL" if self.cluster.is_main else "KYB_DR_VELERO_METRICS_URL"
        return {var: self.metrics_url}
