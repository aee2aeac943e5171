"""One pod's worker: start its container, probe it, restart it, report its status, remove it."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING

import docker
from docker.models.containers import Container

from sandbox.podrunner import ATTEMPT, POD_IP, POD_NAME, POD_NAMESPACE, POD_UID, RUNNER
from sandbox.podrunner.probes import ProbeState, check
from sandbox.podrunner.spec import RunSpec, SpecError, from_registry, parse_probe, run_spec
from sandbox.podrunner.status import ContainerState, PodView, agrees, now_rfc3339, status_patch

if TYPE_CHECKING:
    from sandbox.podrunner.runner import Runner

log = logging.getLogger("podrunner")
MAX_GRACE = 30  # seconds a container may take to stop (terminationGracePeriodSeconds, capped)
MAX_BACKOFF = 300.0  # the kubelet's crash-loop back-off: 10 s doubling up to 5 minutes
RESET_AFTER = 600.0  # a container that ran this long restarts without back-off


def _seconds(stamp: str) -> str:
    """Docker's nanosecond timestamps as the API's seconds (RFC 3339, UTC)."""
    return stamp[:19] + "Z" if stamp and not stamp.startswith("0001") else ""


def _rv(pod: dict) -> int:
    raw = pod["metadata"].get("resourceVersion", "0")
    return int(raw) if raw.isdigit() else 0


def _ran_for(started: str, finished: str) -> float:
    """Seconds between Docker's StartedAt and FinishedAt (0 when either is unknown)."""
    try:
        begin, end = (datetime.fromisoformat(t[:19]) for t in (started, finished))
    except ValueError:
        return 0.0
    return (end - begin).total_seconds()


def _grace(pod: dict) -> int:
    """Seconds the container may take to stop: the pod's grace period, capped."""
    return min(int(pod["spec"].get("terminationGracePeriodSeconds", 30)), MAX_GRACE)


class PodWorker(threading.Thread):
    """Runs one opted-in pod's first container until the pod is gone (a kubelet's pod worker)."""

    def __init__(self, runner: Runner, pod: dict, adopted: list[Container]) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod {meta['namespace']}/{meta['name']}", daemon=True)
        self.runner, self.pod, self.uid = runner, pod, meta["uid"]
        self.wake, self.gone = threading.Event(), False
        self.view = PodView(pod_ip=(pod.get("status") or {}).get("podIP", ""))
        self.container: Container | None = None
        self.readiness: ProbeState | None = None
        self.liveness: ProbeState | None = None
        self.backoff, self.backoff_until, self.killed = 0.0, 0.0, ""
        self.sent: dict | None = None
        self.docker = runner.docker_client()
        self._adopt(adopted)

    # ---- called from the runner's threads ------------------------------------------------------
    def update(self, pod: dict) -> None:
        """The pod changed (a watch event): look at it again."""
        self._newer(pod)
        self.wake.set()

    def _newer(self, pod: dict) -> None:
        if _rv(pod) >= _rv(self.pod):  # an event older than our own patch's answer is stale
            self.pod = pod

    def stop(self) -> None:
        """The pod is deleted (or finished): stop and remove its container."""
        self.gone = True
        self.wake.set()

    # ---- the loop --------------------------------------------------------------------------------
    def run(self) -> None:
        """Step until the pod is gone, then tear its containers down."""
        while not self.gone:
            self.wake.clear()
            try:
                wait = self._step()
            except Exception as exc:  # Docker or API trouble: logged, tried again
                log.warning("%s: %s: %s", self.name, type(exc).__name__, exc)
                wait = 5.0
            self.wake.wait(max(0.05, min(wait, 10.0)))
        try:
            self._teardown()
        finally:
            self.docker.close()
            self.runner.retired(self)

    def _adopt(self, adopted: list[Container]) -> None:
        """Take over the containers a previous runner started for this pod."""
        if not adopted:
            return
        adopted.sort(key=lambda c: int(c.labels.get(ATTEMPT, "0")))
        *old, newest = adopted
        for container in old:
            container.remove(force=True)
        self.container = newest
        self.view.restarts = int(newest.labels.get(ATTEMPT, "0"))
        state = newest.attrs["State"]
        self.view.current = ContainerState(
            "running",
            "",
            container_id=f"docker://{newest.id}",
            image_id=newest.attrs.get("Image", ""),
            started_at=_seconds(state.get("StartedAt", "")),
        )
        ready = [c for c in self.pod["status"].get("conditions") or [] if c["type"] == "Ready"]
        self.view.ready = bool(ready) and ready[0]["status"] == "True"
        if ready:
            self.view.ready_since = ready[0].get("lastTransitionTime") or now_rfc3339()
        self._probes(time.monotonic() - 86400, self.view.ready)  # delays passed long ago
        log.info("%s: adopted container %s", self.name, newest.name)

    def _step(self) -> float:
        """One look at the pod: returns seconds until something is due."""
        if not self.view.pod_ip:
            self.view.pod_ip = self.runner.allocate(self.uid)
        if self.container is not None and not self._running():
            self._exited()
        if self.container is None:
            if self.view.phase != "Running":
                self._publish()
                return 60.0
            left = self.backoff_until - time.monotonic()
            if left > 0:
                self._publish()
                return left
            self._start()
            self._publish()
            return 0.05
        return self._probe()

    def _running(self) -> bool:
        """Whether the current container runs: the runner's last list, else Docker itself."""
        assert self.container is not None
        if self.runner.container_state(self.container.id) == "running":
            return True
        try:
            self.container.reload()
        except docker.errors.NotFound:
            return False
        return self.container.status == "running"

    def _probes(self, started: float, ready: bool) -> None:
        first = self.pod["spec"]["containers"][0]
        readiness = parse_probe(first.get("readinessProbe"), first)
        liveness = parse_probe(first.get("livenessProbe"), first)
        self.readiness = ProbeState(readiness, started, ready) if readiness else None
        self.liveness = ProbeState(liveness, started, True) if liveness else None

    def _set_ready(self, ready: bool) -> None:
        if ready != self.view.ready:
            self.view.ready, self.view.ready_since = ready, now_rfc3339()
            log.info("%s: %s", self.name, "ready" if ready else "not ready")

    def _probe(self) -> float:
        """Run the probes that are due; a failed liveness probe kills the container."""
        wait = 10.0
        for state in (self.readiness, self.liveness):
            if state is None:
                continue
            now = time.monotonic()
            if state.due(now):
                passed, message = check(state.probe, self.view.pod_ip)
                changed = state.record(passed, message, time.monotonic())
                if state is self.readiness and changed:
                    self._set_ready(state.passing)
                if state is self.liveness and not state.passing:
                    self._kill(f"Liveness probe failed: {message}")
                    self._publish()
                    return 0.0
            wait = min(wait, state.next_check - time.monotonic())
        self._publish()
        return wait

    # ---- the container -----------------------------------------------------------------------
    def _start(self) -> None:
        """Pull the image and start the next instance of the container (or say why not)."""
        pod, meta = self.pod, self.pod["metadata"]
        first = pod["spec"]["containers"][0]
        attempt = self.view.restarts + (1 if self.view.last else 0)
        try:
            spec = run_spec(pod, self.view.pod_ip, self.runner.lookup)
            if not from_registry(spec.image, self.runner.registry.address):
                where = self.runner.registry.address
                raise SpecError("ErrImageNotLocal", f"{spec.image} is not from registry {where}")
            image = self.runner.pull(self.docker, spec.image, spec.pull_policy)
        except (SpecError, docker.errors.DockerException) as exc:
            reason = getattr(exc, "reason", "ErrImagePull")
            self.view.current = ContainerState("waiting", reason, str(exc)[:500])
            self._back_off(f"{reason}: {exc}")
            return
        name = f"k8s_{first['name']}_{meta['name']}_{meta['namespace']}_{self.uid[:8]}_{attempt}"
        for stale in self.docker.containers.list(all=True, filters={"name": f"^{name}$"}):
            stale.remove(force=True)  # left by a start that did not finish
        labels = {
            RUNNER: self.runner.cluster,
            POD_UID: self.uid,
            POD_NAME: meta["name"],
            POD_NAMESPACE: meta["namespace"],
            POD_IP: self.view.pod_ip,
            ATTEMPT: str(attempt),
        }
        try:
            self.container = self._run(spec, name, labels)
        except docker.errors.APIError as exc:
            self.view.current = ContainerState("waiting", "CreateContainerError", str(exc)[:500])
            self._back_off(f"CreateContainerError: {exc}")
            return
        self.container.reload()
        started = _seconds(self.container.attrs["State"].get("StartedAt", "")) or now_rfc3339()
        self.view.restarts = attempt
        self.view.current = ContainerState(
            "running", "", container_id=f"docker://{self.container.id}", started_at=started
        )
        self.view.current.image_id = (image.attrs.get("RepoDigests") or [image.id])[0]
        self._probes(time.monotonic(), False)
        self._set_ready(self.readiness is None)  # no readiness probe: ready once running
        log.info("%s: started %s on %s (attempt %d)", self.name, name, self.view.pod_ip, attempt)

    def _run(self, spec: RunSpec, name: str, labels: dict[str, str]) -> Container:
        return self.docker.containers.run(
            spec.image,
            spec.command,
            entrypoint=spec.entrypoint,
            environment=spec.environment,
            name=name,
            labels=labels,
            network_mode="host",
            detach=True,
            user=spec.user,
            read_only=spec.read_only,
            cap_drop=spec.cap_drop or None,
            security_opt=spec.security_opt or None,
            mem_limit=spec.mem_limit,
            nano_cpus=spec.nano_cpus,
            tmpfs=spec.tmpfs or None,
        )

    def _back_off(self, why: str) -> None:
        delay, self.backoff = self.backoff, min(max(self.backoff * 2, 10.0), MAX_BACKOFF)
        self.backoff_until = time.monotonic() + delay
        log.warning("%s: %s (next try in %.0f s)", self.name, why, delay)

    def _kill(self, why: str) -> None:
        """Stop the container within the pod's grace period (it is restarted afterwards)."""
        assert self.container is not None
        log.info("%s: killing %s: %s", self.name, self.container.name, why)
        self.killed = why
        self.container.stop(timeout=_grace(self.pod))
        self._exited()  # now, not when the next container list notices

    def _exited(self) -> None:
        """Record the instance that ended; restart it per restartPolicy, with back-off."""
        assert self.container is not None
        state: dict = {}
        try:
            self.container.reload()
            state = self.container.attrs["State"]
            self.container.remove(force=True)
        except docker.errors.NotFound:
            pass  # removed behind our back: it ended, how is unknown
        code = int(state.get("ExitCode", 137))
        started, finished = state.get("StartedAt", ""), state.get("FinishedAt", "")
        self.view.last = ContainerState(
            "terminated",
            "OOMKilled" if state.get("OOMKilled") else "",
            self.killed,
            self.view.current.container_id,
            started_at=_seconds(started),
            finished_at=_seconds(finished) or now_rfc3339(),
            exit_code=code,
        )
        log.info("%s: container exited with code %d %s", self.name, code, self.killed)
        self.container, self.readiness, self.liveness, self.killed = None, None, None, ""
        self._set_ready(False)
        policy = self.pod["spec"].get("restartPolicy") or "Always"
        if policy == "Never" or (policy == "OnFailure" and code == 0):
            self.view.phase = "Succeeded" if code == 0 else "Failed"
            self.view.current = self.view.last
            return
        if _ran_for(started, finished) > RESET_AFTER:
            self.backoff = 0.0
        self._back_off(f"restarting after exit code {code}")
        left = self.backoff_until - time.monotonic()
        message = f"back-off {left:.0f}s restarting failed container"
        self.view.current = ContainerState(
            "waiting", "CrashLoopBackOff" if left > 0 else "", message
        )
        if left <= 0:
            self.view.current = ContainerState()

    def _publish(self) -> None:
        """Patch the pod's status when it differs from what the runner knows."""
        patch = status_patch(self.pod, self.view)
        if patch == self.sent and agrees(self.pod, patch):
            return
        pod = self.runner.patch_status(self.pod, patch)
        if pod is None:  # the pod is gone
            self.gone = True
            return
        self.sent = patch
        self._newer(pod)

    def _teardown(self) -> None:
        """Stop and remove every container of this pod (graceful, then forced)."""
        grace = _grace(self.pod)
        filters = {"label": [f"{POD_UID}={self.uid}", f"{RUNNER}={self.runner.cluster}"]}
        for container in self.docker.containers.list(all=True, filters=filters):
            if container.status == "running":
                container.stop(timeout=grace)
            container.remove(force=True)
            log.info("%s: removed container %s", self.name, container.name)
