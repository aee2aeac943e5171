"""What to run for a pod: its first container as Docker options, its probes (pure, no I/O)."""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.quantity import parse_quantity
from sandbox.podrunner import RUN_LABEL

# lookup(kind, namespace, name) -> the ConfigMap's or Secret's data, or None when it is missing
Lookup = Callable[[str, str, str], dict[str, str] | None]


class SpecError(ValueError):
    """The pod asks for something the runner cannot give it (said in its container status)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def opted_in(pod: dict) -> bool:
    """Whether the pod asks to run for real (label kyb.dev/run=true)."""
    return (pod["metadata"].get("labels") or {}).get(RUN_LABEL) == "true"


def from_registry(image: str, registry: str) -> bool:
    """Whether an image reference names a repository of `registry` (host:port)."""
    return "/" in image and image.split("/", 1)[0] == registry


@dataclass(frozen=True)
class Probe:
    """One probe of a container, with the kubelet's defaults."""

    kind: str  # http | tcp | unsupported
    port: int = 0
    path: str = "/"
    scheme: str = "HTTP"
    headers: dict[str, str] = field(default_factory=dict)
    initial_delay: float = 0
    period: float = 10
    timeout: float = 1
    success_threshold: int = 1
    failure_threshold: int = 3


def _port(value: Any, container: dict) -> int:
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return int(value)
    for port in container.get("ports") or []:
        if port.get("name") == value:
            return int(port["containerPort"])
    raise SpecError("InvalidProbe", f"probe port {value!r} names no port of the container")


def parse_probe(raw: dict | None, container: dict) -> Probe | None:
    """The probe of a container spec (readinessProbe, livenessProbe), or None if it has none."""
    if not raw:
        return None
    timing = {
        "initial_delay": float(raw.get("initialDelaySeconds") or 0),
        "period": float(raw.get("periodSeconds") or 10),
        "timeout": float(raw.get("timeoutSeconds") or 1),
        "success_threshold": int(raw.get("successThreshold") or 1),
        "failure_threshold": int(raw.get("failureThreshold") or 3),
    }
    if http := raw.get("httpGet"):
        headers = {h["name"]: h["value"] for h in http.get("httpHeaders") or []}
        return Probe(
            "http",
            _port(http["port"], container),
            http.get("path") or "/",
            (http.get("scheme") or "HTTP").upper(),
            headers,
            **timing,
        )
    if tcp := raw.get("tcpSocket"):
        return Probe("tcp", _port(tcp["port"], container), **timing)
    return Probe("unsupported", **timing)  # exec, grpc: fails, saying so


@dataclass
class RunSpec:
    """Docker options for the pod's first container."""

    image: str
    entrypoint: list[str] | None
    command: list[str] | None  # Docker's CMD: the container's args
    environment: dict[str, str]
    user: str | None
    read_only: bool
    cap_drop: list[str]
    security_opt: list[str]
    mem_limit: int | None
    nano_cpus: int | None
    tmpfs: dict[str, str]
    pull_policy: str
    grace_seconds: int
    binds: dict[str, dict[str, str]] = field(default_factory=dict)  # host folder -> bind, mode


def field_value(pod: dict, path: str) -> str:
    """A pod's field (a fieldRef's fieldPath) as a kubelet gives it to env and downward volumes."""
    meta, status = pod["metadata"], pod.get("status") or {}
    labels = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if labels:
        return (meta.get(labels.group(1)) or {}).get(labels.group(2), "")
    known = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": pod["spec"].get("nodeName"),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName"),
        "status.podIP": status.get("podIP"),
        "status.hostIP": status.get("hostIP"),
    }
    if path not in known:
        raise SpecError("CreateContainerConfigError", f"fieldRef {path} is not supported here")
    return str(known[path] or "")


def _resource(container: dict, ref: dict) -> str:
    kind, _, name = ref["resource"].partition(".")
    value = ((container.get("resources") or {}).get(kind) or {}).get(name)
    if value is None:  # unset limit: a kubelet gives the node's allocatable; here the machine's
        return "0" if name == "cpu" else ""
    # the apiserver stores an unset divisor as "0", which a kubelet reads as 1
    divisor = parse_quantity(ref.get("divisor") or "1") or parse_quantity("1")
    return str(math.ceil(parse_quantity(value) / divisor))


def _ref(lookup: Lookup, kind: str, namespace: str, ref: dict, key: str | None) -> str | None:
    data = lookup(kind, namespace, ref["name"])
    if data is None or (key is not None and key not in data):
        if ref.get("optional"):
            return None
        what = f"{kind} {ref['name']}" + (f" key {key}" if key else "")
        raise SpecError("CreateContainerConfigError", f"{what} not found")
    return data[key] if key else ""


def _from(lookup: Lookup, kind: str, namespace: str, ref: dict) -> dict[str, str]:
    data = lookup(kind, namespace, ref["name"])
    if data is None and not ref.get("optional"):
        raise SpecError("CreateContainerConfigError", f"{kind} {ref['name']} not found")
    return dict(data or {})


def environment(pod: dict, container: dict, lookup: Lookup) -> dict[str, str]:
    """The container's environment as a kubelet resolves it (envFrom, then env, $(VAR) expanded)."""
    namespace = pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if ref := source.get("configMapRef"):
            data = _from(lookup, "configmap", namespace, ref)
        else:
            data = _from(lookup, "secret", namespace, source["secretRef"])
        env.update({prefix + k: v for k, v in data.items()})
    for var in container.get("env") or []:
        source = var.get("valueFrom")
        if source is None:
            env[var["name"]] = expand(var.get("value") or "", env)
            continue
        if ref := source.get("fieldRef"):
            value: str | None = field_value(pod, ref["fieldPath"])
        elif ref := source.get("resourceFieldRef"):
            value = _resource(container, ref)
        elif ref := source.get("configMapKeyRef"):
            value = _ref(lookup, "configmap", namespace, ref, ref["key"])
        else:
            ref = source["secretKeyRef"]
            value = _ref(lookup, "secret", namespace, ref, ref["key"])
        if value is not None:
            env[var["name"]] = value
    return env


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: known names are replaced, $$ escapes, unknown ones stay."""
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)",
        lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
        text,
    )


def decode_secret(data: dict[str, str] | None) -> dict[str, str] | None:
    """A Secret's data (base64) as text."""
    if data is None:
        return None
    return {k: base64.b64decode(v).decode(errors="replace") for k, v in data.items()}


def first_port(container: dict) -> int | None:
    """The container's first containerPort: the PORT it is told to listen on."""
    ports = container.get("ports") or []
    return int(ports[0]["containerPort"]) if ports else None


def run_spec(pod: dict, pod_ip: str, lookup: Lookup) -> RunSpec:
    """Docker options that run the pod's first container as a kubelet would, on pod_ip."""
    spec = pod["spec"]
    container = spec["containers"][0]
    env = environment(pod, container, lookup)
    env.setdefault("POD_IP", pod_ip)
    if (port := first_port(container)) is not None:
        env.setdefault("PORT", str(port))
    pod_sec, sec = spec.get("securityContext") or {}, container.get("securityContext") or {}
    uid = sec.get("runAsUser", pod_sec.get("runAsUser"))
    gid = sec.get("runAsGroup", pod_sec.get("runAsGroup"))
    user = None if uid is None else (f"{uid}:{gid}" if gid is not None else str(uid))
    limits = (container.get("resources") or {}).get("limits") or {}
    memory, cpu = limits.get("memory"), limits.get("cpu")
    empty_dirs = {v["name"]: v["emptyDir"] for v in spec.get("volumes") or [] if "emptyDir" in v}
    tmpfs = {}
    for mount in container.get("volumeMounts") or []:
        if (volume := empty_dirs.get(mount["name"])) is not None:
            size = volume.get("sizeLimit")
            tmpfs[mount["mountPath"]] = f"size={int(parse_quantity(size))}" if size else ""
    tag = container["image"].rsplit("/", 1)[-1]
    default_policy = "Always" if ":" not in tag or tag.endswith(":latest") else "IfNotPresent"
    return RunSpec(
        image=container["image"],
        entrypoint=[expand(a, env) for a in container["command"]]
        if container.get("command")
        else None,
        command=[expand(a, env) for a in container["args"]] if container.get("args") else None,
        environment=env,
        user=user,
        read_only=bool(sec.get("readOnlyRootFilesystem")),
        cap_drop=list((sec.get("capabilities") or {}).get("drop") or []),
        security_opt=["no-new-privileges"] if sec.get("allowPrivilegeEscalation") is False else [],
        mem_limit=int(parse_quantity(memory)) if memory else None,
        nano_cpus=int(parse_quantity(cpu) * 1_000_000_000) if cpu else None,
        tmpfs=tmpfs,
        pull_policy=container.get("imagePullPolicy") or default_policy,
        grace_seconds=int(spec.get("terminationGracePeriodSeconds", 30)),
    )
