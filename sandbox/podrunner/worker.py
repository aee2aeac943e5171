"""One pod's worker: start its container, probe it, restart it, report its status, remove it."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

import docker
from docker.models.containers import Container
from kubernetes.client.rest import ApiException

from sandbox.podrunner import ATTEMPT, POD_IP, volumes
from sandbox.podrunner.containers import ended, remove_all, running_state, start
from sandbox.podrunner.probes import ProbeState, check
from sandbox.podrunner.spec import SpecError, from_registry, parse_probe, run_spec
from sandbox.podrunner.status import ContainerState, PodView, agrees, now_rfc3339, status_patch

if TYPE_CHECKING:
    from sandbox.podrunner.runner import Runner

log = logging.getLogger("podrunner")
MAX_GRACE = 30  # seconds a container may take to stop (terminationGracePeriodSeconds, capped)
MAX_BACKOFF = 300.0  # the kubelet's crash-loop back-off: 10 s doubling up to 5 minutes
RESET_AFTER = 600.0  # a container that ran this long restarts without back-off


def _rv(pod: dict) -> int:
    raw = pod["metadata"].get("resourceVersion", "0")
    return int(raw) if raw.isdigit() else 0


def _grace(pod: dict) -> int:
    """Seconds the container may take to stop: the pod's grace period, capped."""
    return min(int(pod["spec"].get("terminationGracePeriodSeconds", 30)), MAX_GRACE)


def pre_stop_seconds(pod: dict) -> int:
    """The first container's `lifecycle.preStop.sleep.seconds` (0 without one), within the grace.

    A kubelet runs that sleep before SIGTERM, while the endpoints controller takes the terminating
    pod out of its Services, so routers stop sending to it before it stops listening.
    """
    containers = pod["spec"].get("containers") or [{}]
    sleep = (((containers[0].get("lifecycle") or {}).get("preStop") or {}).get("sleep")) or {}
    seconds = sleep.get("seconds", 0)
    return min(int(seconds), _grace(pod)) if isinstance(seconds, int) and seconds > 0 else 0


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
        self.renew_at: float | None = None  # when its ServiceAccount token is renewed
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
        self.view.pod_ip = self.view.pod_ip or newest.labels.get(POD_IP, "")  # not patched yet
        self.view.current = running_state(newest)  # if it ended meanwhile, _step sees it
        ready = [c for c in self.pod["status"].get("conditions") or [] if c["type"] == "Ready"]
        self.view.ready = bool(ready) and ready[0]["status"] == "True"
        if ready:
            self.view.ready_since = ready[0].get("lastTransitionTime") or now_rfc3339()
        self._probes(time.monotonic() - 86400, self.view.ready)  # delays passed long ago
        self.renew_at = 0.0  # its volumes (a token) are written again at once: renewed from now
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
        """Run the probes that are due; a failed liveness probe kills the container.

        Also renews the pod's ServiceAccount token when 80% of its life is spent.
        """
        wait = 10.0
        if self.renew_at is not None:
            if time.monotonic() >= self.renew_at:
                self._volumes(self.pod)
                log.info("%s: renewed its ServiceAccount token", self.name)
            wait = min(wait, max(self.renew_at - time.monotonic(), 0.05))
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
        pod = self.pod
        attempt = self.view.restarts + (1 if self.view.last else 0)
        try:
            spec = run_spec(pod, self.view.pod_ip, self.runner.lookup)
            if not from_registry(spec.image, self.runner.registry.address):
                where = self.runner.registry.address
                raise SpecError("ErrImageNotLocal", f"{spec.image} is not from registry {where}")
            spec.environment = {**self.runner.cluster_env(), **spec.environment}
            spec.binds = self._volumes(pod)
            image = self.runner.pull(self.docker, spec.image, spec.pull_policy)
        except ApiException as exc:  # a token or a ConfigMap the apiserver would not give
            self.view.current = ContainerState("waiting", "CreateContainerConfigError", str(exc))
            self._back_off(f"CreateContainerConfigError: {exc.status} {exc.reason}")
            return
        except (SpecError, docker.errors.DockerException) as exc:
            reason = getattr(exc, "reason", "ErrImagePull")
            self.view.current = ContainerState("waiting", reason, str(exc)[:500])
            self._back_off(f"{reason}: {exc}")
            return
        try:
            self.container = start(
                self.docker, self.runner.cluster, pod, self.view.pod_ip, attempt, spec
            )
        except docker.errors.APIError as exc:
            self.view.current = ContainerState("waiting", "CreateContainerError", str(exc)[:500])
            self._back_off(f"CreateContainerError: {exc}")
            return
        self.view.restarts = attempt
        digests = image.attrs.get("RepoDigests") or [image.id]
        self.view.current = running_state(self.container, digests[0])
        self._probes(time.monotonic(), False)
        self._set_ready(self.readiness is None)  # no readiness probe: ready once running
        log.info("%s: started on %s (attempt %d)", self.name, self.view.pod_ip, attempt)

    def _volumes(self, pod: dict) -> dict[str, dict[str, str]]:
        """Fill the pod's file volumes (its token among them); Docker's binds of them."""
        filled = volumes.files(pod, self.runner.lookup, self.runner.token_for)
        due = [v.renew_in for v in filled if v.renew_in is not None]
        self.renew_at = time.monotonic() + min(due) if due else None
        return volumes.write(self.runner.volumes / self.uid, filled)

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
        self.view.last, ran = ended(self.container, self.killed, self.view.current.container_id)
        code = self.view.last.exit_code
        log.info("%s: container exited with code %d %s", self.name, code, self.killed)
        self.container, self.readiness, self.liveness, self.killed = None, None, None, ""
        self._set_ready(False)
        policy = self.pod["spec"].get("restartPolicy") or "Always"
        if policy == "Never" or (policy == "OnFailure" and code == 0):
            self.view.phase = "Succeeded" if code == 0 else "Failed"
            self.view.current = self.view.last
            return
        if ran > RESET_AFTER:
            self.backoff = 0.0
        self._back_off(f"restarting after exit code {code}")
        left = self.backoff_until - time.monotonic()
        message = f"back-off {left:.0f}s restarting failed container"
        waiting = ContainerState("waiting", "CrashLoopBackOff", message)
        self.view.current = waiting if left > 0 else ContainerState()

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
        """Its preStop sleep, then stop and remove every container of this pod.

        Graceful (SIGTERM), then forced within what is left of the grace period.
        """
        wait = pre_stop_seconds(self.pod)
        if wait and self.container is not None:
            log.info("%s: preStop sleep %ds", self.name, wait)
            time.sleep(wait)  # a kubelet's preStop sleep: bounded by the grace period
        remove_all(self.docker, self.runner.cluster, self.uid, max(_grace(self.pod) - wait, 1))
        volumes.remove(self.runner.volumes / self.uid)
        log.info("%s: gone", self.name)
