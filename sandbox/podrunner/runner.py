"""The runner: watch the opted-in pods, keep one worker per pod, list containers, hand out IPs."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import docker
import urllib3
from docker.models.containers import Container
from docker.models.images import Image
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from sandbox.components.registry import Registry
from sandbox.podrunner import POD_IP, POD_UID, RUN_LABEL, RUNNER
from sandbox.podrunner.spec import decode_secret
from sandbox.podrunner.worker import PodWorker
from sandbox.settings import Settings

log = logging.getLogger("podrunner")
API_TIMEOUT = (5, 30)  # (connect, read) seconds for every apiserver call
WATCH_SECONDS = 60  # a watch ends after this and is started again from its resourceVersion
DOCKER_TIMEOUT = 60  # seconds for any Docker call (a pull streams, so this bounds each read)
RELIST_SECONDS = 2.0  # how often the containers are listed (a kubelet's PLEG relists every 1 s)
STATUS_SECONDS = 10.0  # how often the status file (the component's liveness sign) is written
SELECTOR = f"{RUN_LABEL}=true"


class Runner:
    """The local platform's kubelet for pods labelled kyb.dev/run=true on one cluster."""

    def __init__(
        self, settings: Settings, cluster: str, kubeconfig: Path, status: Path, cidr: str
    ) -> None:
        self.settings, self.cluster, self.status_file = settings, cluster, status
        self.core = client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))
        self.volumes = status.parent / "volumes"  # pod UID -> its file volumes
        self.registry = Registry(settings)
        self.cidr = ipaddress.ip_network(cidr)
        self.cursor = 0
        self.lock = threading.Lock()
        self.workers: dict[str, PodWorker] = {}  # pod UID -> its worker
        self.retiring: set[PodWorker] = set()  # workers still removing a deleted pod's container
        self.pod_ips: dict[str, str] = {}  # pod UID -> IP, for every pod listed or watched
        self.states: dict[str, str] = {}  # container id -> state, from the last list
        self.adoptable: dict[str, list[Container]] = {}
        self.stopping = threading.Event()
        self.docker = self.docker_client()

    def docker_client(self) -> docker.DockerClient:
        """A Docker client of its own (one per thread), every call bounded by DOCKER_TIMEOUT."""
        return docker.DockerClient(
            base_url=f"unix://{self.settings.docker_socket}", timeout=DOCKER_TIMEOUT
        )

    # ---- services for the workers ------------------------------------------------------------
    def allocate(self, uid: str) -> str:
        """A free IP of the runner's range for the pod, not the one handed out just before."""
        with self.lock:
            used = set(self.pod_ips.values()) | {w.view.pod_ip for w in self._all_workers()}
            size = self.cidr.num_addresses
            for step in range(1, size):
                index = (self.cursor + step) % size
                ip = str(self.cidr.network_address + index)
                if 0 < index < size - 1 and ip not in used:
                    self.cursor, self.pod_ips[uid] = index, ip
                    return ip
        raise RuntimeError(f"no free address left in {self.cidr}")

    def container_state(self, container_id: str) -> str | None:
        """The container's state in the last list, None if it was not listed."""
        return self.states.get(container_id)

    def lookup(self, kind: str, namespace: str, name: str) -> dict[str, str] | None:
        """A ConfigMap's or Secret's data (text), None when it does not exist."""
        read = self.core.read_namespaced_config_map
        if kind == "secret":
            read = self.core.read_namespaced_secret
        try:
            found = json.loads(
                read(name, namespace, _preload_content=False, _request_timeout=API_TIMEOUT).data
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        data = found.get("data") or {}
        return decode_secret(data) if kind == "secret" else data

    def token_for(self, pod: dict, audience: str, seconds: int) -> tuple[str, int]:
        """A token of the pod's ServiceAccount bound to the pod (TokenRequest), and its life (s)."""
        meta = pod["metadata"]
        body = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(
                audiences=[audience] if audience else [],
                expiration_seconds=seconds,
                bound_object_ref=client.V1BoundObjectReference(
                    api_version="v1", kind="Pod", name=meta["name"], uid=meta["uid"]
                ),
            )
        )
        account = pod["spec"].get("serviceAccountName") or "default"
        answer = self.core.create_namespaced_service_account_token(
            account, meta["namespace"], body, _request_timeout=API_TIMEOUT
        )
        expires = answer.status.expiration_timestamp.timestamp()
        return answer.status.token, max(int(expires - time.time()), 60)

    def cluster_env(self) -> dict[str, str]:
        """The in-cluster environment a kubelet gives every container: where the apiserver is.

        A kubelet names the `kubernetes` Service's ClusterIP; nothing routes Service IPs here, so
        the runner names the apiserver's own loopback address, which its certificate covers.
        """
        url = urlsplit(self.core.api_client.configuration.host)
        host, port = url.hostname or "127.0.0.1", str(url.port or 443)
        return {
            "KUBERNETES_SERVICE_HOST": host,
            "KUBERNETES_SERVICE_PORT": port,
            "KUBERNETES_SERVICE_PORT_HTTPS": port,
            "KUBERNETES_PORT": f"tcp://{host}:{port}",
            f"KUBERNETES_PORT_{port}_TCP": f"tcp://{host}:{port}",
            f"KUBERNETES_PORT_{port}_TCP_PROTO": "tcp",
            f"KUBERNETES_PORT_{port}_TCP_ADDR": host,
            f"KUBERNETES_PORT_{port}_TCP_PORT": port,
        }

    def pull(self, docker_client: docker.DockerClient, image: str, policy: str) -> Image:
        """The image, pulled with the registry's credentials unless the policy says otherwise."""
        if policy != "Always":
            with contextlib.suppress(docker.errors.ImageNotFound):
                return docker_client.images.get(image)
            if policy == "Never":
                raise docker.errors.ImageNotFound(f"{image} is not present and may not be pulled")
        user, password = self.registry.credentials()
        auth = {"username": user, "password": password.get_secret_value()}
        return docker_client.images.pull(image, auth_config=auth)

    def patch_status(self, pod: dict, patch: dict) -> dict | None:
        """Patch pods/status (strategic merge); the pod as stored, or None when it is gone."""
        meta = pod["metadata"]
        try:
            answer = self.core.patch_namespaced_pod_status(
                meta["name"],
                meta["namespace"],
                patch,
                _content_type="application/strategic-merge-patch+json",
                _preload_content=False,
                _request_timeout=API_TIMEOUT,
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return json.loads(answer.data)

    def retired(self, worker: PodWorker) -> None:
        """A worker finished removing its pod's containers."""
        with self.lock:
            self.retiring.discard(worker)
            if self.workers.get(worker.uid) is not worker:
                self.pod_ips.pop(worker.uid, None)

    def _all_workers(self) -> list[PodWorker]:
        return [*self.workers.values(), *self.retiring]

    # ---- pods ----------------------------------------------------------------------------------
    def _see(self, pod: dict) -> None:
        """A pod was listed or changed: start, update or stop its worker."""
        meta, status = pod["metadata"], pod.get("status") or {}
        uid = meta["uid"]
        if status.get("podIP"):
            self.pod_ips[uid] = status["podIP"]
        worker = self.workers.get(uid)
        ended = meta.get("deletionTimestamp") or (
            status.get("phase") in ("Succeeded", "Failed")
            and (worker is None or worker.view.phase == "Running")  # finished by someone else
        )
        if worker is None:
            if ended or not pod["spec"].get("nodeName"):
                return  # not scheduled yet, or nothing to run any more
            worker = PodWorker(self, pod, self.adoptable.get(uid, []))
            with self.lock:  # owned before it is no longer adoptable: the sweep skips it
                self.workers[uid] = worker
                self.adoptable.pop(uid, None)
            worker.start()
        elif ended:
            self._forget(uid)
        else:
            worker.update(pod)

    def _forget(self, uid: str) -> None:
        with self.lock:
            worker = self.workers.pop(uid, None)
            if worker is not None:
                self.retiring.add(worker)
        if worker is not None:
            worker.stop()
        else:
            self.pod_ips.pop(uid, None)

    def _relist(self, first: bool) -> str:
        """List the opted-in pods, reconcile the workers with them; return the resourceVersion."""
        answer = self.core.list_pod_for_all_namespaces(
            label_selector=SELECTOR, _preload_content=False, _request_timeout=API_TIMEOUT
        )
        listed = json.loads(answer.data)
        pods = {p["metadata"]["uid"]: p for p in listed["items"]}
        for uid, pod in pods.items():  # every IP in use is known before any is handed out
            if ip := (pod.get("status") or {}).get("podIP"):
                self.pod_ips[uid] = ip
        if first:
            self._adopt_or_remove(set(pods))
        for uid in set(self.workers) - set(pods):
            self._forget(uid)
        for pod in pods.values():
            self._see(pod)
        with self.lock:  # containers of pods that ended while the runner was away
            leftovers = [c for cs in self.adoptable.values() for c in cs]
            self.adoptable.clear()
        for container in leftovers:
            log.info("removing container %s of a finished pod", container.name)
            container.remove(force=True)
        return listed["metadata"]["resourceVersion"]

    def _adopt_or_remove(self, uids: set[str]) -> None:
        """At start: containers of listed pods are adopted, the others (orphans) removed."""
        for container in self.docker.containers.list(
            all=True, filters={"label": f"{RUNNER}={self.cluster}"}
        ):
            uid = container.labels.get(POD_UID, "")
            if uid in uids:
                self.adoptable.setdefault(uid, []).append(container)
                self.pod_ips.setdefault(uid, container.labels.get(POD_IP, ""))
            else:
                log.info("removing orphan container %s", container.name)
                container.remove(force=True)

    def _watch(self, version: str) -> None:
        """Watch the opted-in pods from `version` until it expires (410) or the runner stops."""
        while not self.stopping.is_set():
            stream = watch.Watch().stream(
                self.core.list_pod_for_all_namespaces,
                label_selector=SELECTOR,
                resource_version=version,
                timeout_seconds=WATCH_SECONDS,
                allow_watch_bookmarks=True,
                _request_timeout=(API_TIMEOUT[0], WATCH_SECONDS + 30),
            )
            for event in stream:
                pod, kind = event["raw_object"], event["type"]
                if kind == "ERROR":
                    if pod.get("code") == 410:
                        return  # expired: list again
                    raise ApiException(status=pod.get("code"), reason=pod.get("message"))
                version = pod["metadata"]["resourceVersion"]
                if kind == "DELETED":
                    self._forget(pod["metadata"]["uid"])
                elif kind in ("ADDED", "MODIFIED"):
                    self._see(pod)

    def run(self) -> None:
        """List, then watch; list again after an expired watch or an error, until stopped."""
        first = True
        while not self.stopping.is_set():
            try:
                version = self._relist(first)
                if first:  # after adoption: no container of a listed pod is taken for an orphan
                    relister = threading.Thread(target=self._relist_containers, daemon=True)
                    relister.start()
                    first = False
                self._watch(version)
            except ApiException as exc:
                if exc.status != 410:
                    log.warning("apiserver: %s %s", exc.status, exc.reason)
                    self.stopping.wait(5)
            except (urllib3.exceptions.HTTPError, OSError, docker.errors.DockerException) as exc:
                log.warning("%s: %s", type(exc).__name__, exc)
                self.stopping.wait(5)

    # ---- containers ------------------------------------------------------------------------------
    def _relist_containers(self) -> None:
        """Every RELIST_SECONDS: list the containers (a kubelet's PLEG).

        Note each container's state, wake the workers whose container changed, remove containers
        no worker owns, and write the status file.
        """
        docker_client, written = self.docker_client(), 0.0
        while not self.stopping.wait(RELIST_SECONDS):
            try:
                listed = docker_client.containers.list(
                    all=True, sparse=True, filters={"label": f"{RUNNER}={self.cluster}"}
                )
            except docker.errors.DockerException as exc:
                log.warning("docker: %s", exc)
                continue
            states = {c.id: c.attrs.get("State", "") for c in listed}
            with self.lock:
                owners = {w.uid for w in self._all_workers()} | set(self.adoptable)
                for worker in self._all_workers():
                    mine = worker.container.id if worker.container else None
                    if mine and states.get(mine) != self.states.get(mine):
                        worker.wake.set()
                self.states = states
                orphans = [c for c in listed if c.attrs["Labels"].get(POD_UID) not in owners]
            for container in orphans:
                log.info("removing container %s of no pod", container.id[:12])
                with contextlib.suppress(docker.errors.NotFound):
                    docker_client.containers.get(container.id).remove(force=True)
            if time.monotonic() - written >= STATUS_SECONDS:
                self._write_status(len(owners), len(listed))
                written = time.monotonic()

    def _write_status(self, pods: int, containers: int) -> None:
        """The status file: the component reads the runner's liveness from its time."""
        body = {"pid": os.getpid(), "time": time.time(), "pods": pods, "containers": containers}
        tmp = self.status_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(body))
        tmp.replace(self.status_file)
