"""The Docker side of a pod: its containers' names and labels, starting, ending, removing them."""

from __future__ import annotations

import logging
from datetime import datetime

import docker
from docker.models.containers import Container

from sandbox.podrunner import ATTEMPT, POD_IP, POD_NAME, POD_NAMESPACE, POD_UID, RUNNER
from sandbox.podrunner.spec import RunSpec
from sandbox.podrunner.status import ContainerState, now_rfc3339

log = logging.getLogger("podrunner")


def seconds(stamp: str) -> str:
    """Docker's nanosecond timestamps as the API's seconds (RFC 3339, UTC); "" when unset."""
    return stamp[:19] + "Z" if stamp and not stamp.startswith("0001") else ""


def ran_for(started: str, finished: str) -> float:
    """Seconds between Docker's StartedAt and FinishedAt (0 when either is unknown)."""
    try:
        begin, end = (datetime.fromisoformat(t[:19]) for t in (started, finished))
    except ValueError:
        return 0.0
    return (end - begin).total_seconds()


def name_of(pod: dict, attempt: int) -> str:
    """The container's name, as dockershim named a kubelet's: k8s_<c>_<pod>_<ns>_<uid8>_<n>."""
    meta, first = pod["metadata"], pod["spec"]["containers"][0]
    return f"k8s_{first['name']}_{meta['name']}_{meta['namespace']}_{meta['uid'][:8]}_{attempt}"


def start(
    client: docker.DockerClient, cluster: str, pod: dict, ip: str, attempt: int, spec: RunSpec
) -> Container:
    """Run the pod's container (host network), labelled so a restarted runner finds it."""
    meta, name = pod["metadata"], name_of(pod, attempt)
    for stale in client.containers.list(all=True, filters={"name": f"^{name}$"}):
        stale.remove(force=True)  # left by a start that did not finish
    labels = {
        RUNNER: cluster,
        POD_UID: meta["uid"],
        POD_NAME: meta["name"],
        POD_NAMESPACE: meta["namespace"],
        POD_IP: ip,
        ATTEMPT: str(attempt),
    }
    container = client.containers.run(
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
        volumes=spec.binds or None,
    )
    container.reload()
    return container


def running_state(container: Container, image_id: str = "") -> ContainerState:
    """The `running` state of a container that runs."""
    started = seconds(container.attrs["State"].get("StartedAt", "")) or now_rfc3339()
    return ContainerState(
        "running",
        "",
        container_id=f"docker://{container.id}",
        image_id=image_id or container.attrs.get("Image", ""),
        started_at=started,
    )


def ended(container: Container, why: str, container_id: str) -> tuple[ContainerState, float]:
    """How the container ended (it is removed then), and for how many seconds it had run."""
    state: dict = {}
    try:
        container.reload()
        state = container.attrs["State"]
        container.remove(force=True)
    except docker.errors.NotFound:
        pass  # removed behind our back: it ended, how is unknown
    started, finished = state.get("StartedAt", ""), state.get("FinishedAt", "")
    terminated = ContainerState(
        "terminated",
        "OOMKilled" if state.get("OOMKilled") else "",
        why,
        container_id,
        started_at=seconds(started),
        finished_at=seconds(finished) or now_rfc3339(),
        exit_code=int(state.get("ExitCode", 137)),
    )
    return terminated, ran_for(started, finished)


def remove_all(client: docker.DockerClient, cluster: str, uid: str, grace: int) -> None:
    """Stop (SIGTERM, then SIGKILL after `grace` seconds) and remove every container of a pod."""
    filters = {"label": [f"{POD_UID}={uid}", f"{RUNNER}={cluster}"]}
    for container in client.containers.list(all=True, filters=filters):
        if container.status == "running":
            container.stop(timeout=grace)
        container.remove(force=True)
        log.info("removed container %s", container.name)
