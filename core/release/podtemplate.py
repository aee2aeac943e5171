"""A release's pod template, checked before any write: containers, resources, probes, env, ports.

The apiserver's server-side dry run (tasks/kube.py `dry_run`) checks the rest before the first
write; this module catches the mistakes a person makes most, with the field's path in the message.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from core.errors import ConfigError
from core.names import is_dns_label
from core.quantity import parse_quantity
from core.release.errors import SpecError

_HANDLERS = ("httpGet", "tcpSocket", "exec", "grpc")
_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
_PROBE_NUMBERS = {
    "initialDelaySeconds": 0,
    "timeoutSeconds": 1,
    "periodSeconds": 1,
    "successThreshold": 1,
    "failureThreshold": 1,
    "terminationGracePeriodSeconds": 1,
}
_PORT_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?")
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_DIGEST = re.compile(r".+@sha256:[a-f0-9]{64}")
_RESOURCE_KINDS = ("requests", "limits")


def _fail(path: str, problem: str) -> SpecError:
    return SpecError(f"{path}: {problem}")


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(path, f"expected a mapping, got {type(value).__name__}")
    return value


def _list(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail(path, f"expected a list, got {type(value).__name__}")
    return value


def _whole(value: Any, path: str, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise _fail(path, f"{value!r} is not a whole number >= {least}")


def _port(value: Any, path: str, names: set[str]) -> None:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= 65535:
            raise _fail(path, f"port {value} is out of range: use 1..65535")
        return
    if isinstance(value, str) and _PORT_NAME.fullmatch(value) and re.search("[a-z]", value):
        if value not in names:
            known = ", ".join(sorted(names)) or "none"
            raise _fail(
                path,
                f"names port {value!r}, which the container does not declare: "
                f"use a number or one of its named ports ({known})",
            )
        return
    raise _fail(path, f"port {value!r} is neither a number 1..65535 nor a port name")


def _resources(container: Mapping[str, Any], path: str) -> None:
    resources = _mapping(container.get("resources"), f"{path}.resources")
    values: dict[str, dict[str, Any]] = {}
    for kind in _RESOURCE_KINDS:
        for name, raw in _mapping(resources.get(kind), f"{path}.resources.{kind}").items():
            where = f"{path}.resources.{kind}.{name}"
            try:
                values.setdefault(name, {})[kind] = parse_quantity(raw, "value")
            except ConfigError as exc:
                raise _fail(where, exc.message) from None
    for name, both in values.items():
        if len(both) == 2 and both["requests"] > both["limits"]:
            raise _fail(
                f"{path}.resources.requests.{name}",
                f"{resources['requests'][name]!r} is above its limit "
                f"{resources['limits'][name]!r}: a request may not exceed the limit",
            )


def _probe(probe: Any, path: str, ports: set[str]) -> None:
    probe = _mapping(probe, path)
    handlers = [h for h in _HANDLERS if h in probe]
    if len(handlers) != 1:
        got = ", ".join(handlers) or "none"
        raise _fail(path, f"a probe needs exactly one of {', '.join(_HANDLERS)}; got {got}")
    handler = _mapping(probe[handlers[0]], f"{path}.{handlers[0]}")
    if handlers[0] in ("httpGet", "tcpSocket", "grpc"):
        if "port" not in handler:
            raise _fail(f"{path}.{handlers[0]}", "needs a port")
        _port(handler["port"], f"{path}.{handlers[0]}.port", ports)
    if handlers[0] == "httpGet" and not str(handler.get("path", "/")).startswith("/"):
        raise _fail(f"{path}.httpGet.path", f"{handler['path']!r} must start with '/'")
    if handlers[0] == "exec" and not _list(handler.get("command"), f"{path}.exec.command"):
        raise _fail(f"{path}.exec.command", "needs the command to run")
    for field, least in _PROBE_NUMBERS.items():
        if field in probe:
            _whole(probe[field], f"{path}.{field}", least)


def _env(container: Mapping[str, Any], path: str) -> None:
    for i, var in enumerate(_list(container.get("env"), f"{path}.env")):
        where = f"{path}.env[{i}]"
        var = _mapping(var, where)
        name = var.get("name")
        if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
            raise _fail(f"{where}.name", f"{name!r} is not an environment variable name")
        if "value" in var and "valueFrom" in var:
            raise _fail(where, f"{name} has both value and valueFrom: keep one")
        if "value" in var and not isinstance(var["value"], str):
            raise _fail(f"{where}.value", f"{var['value']!r} must be a string: quote it")


def _container(container: Any, path: str, release_container: str, image: str) -> dict[str, Any]:
    container = dict(_mapping(container, path))
    name = container.get("name")
    if not is_dns_label(name):
        raise _fail(f"{path}.name", f"{name!r} is not a DNS-1123 label")
    if name == release_container:
        container["image"] = image
    elif not isinstance(container.get("image"), str) or not _DIGEST.fullmatch(container["image"]):
        raise _fail(
            f"{path}.image",
            f"{container.get('image')!r} is not pinned by digest (a tag can move): "
            "use registry/repo@sha256:<64 hex>",
        )
    ports: set[str] = set()
    for i, port in enumerate(_list(container.get("ports"), f"{path}.ports")):
        port = _mapping(port, f"{path}.ports[{i}]")
        _port(port.get("containerPort"), f"{path}.ports[{i}].containerPort", set())
        if port.get("name"):
            ports.add(port["name"])
    for probe in _PROBES:
        if probe in container:
            _probe(container[probe], f"{path}.{probe}", ports)
    _resources(container, path)
    _env(container, path)
    return container


def checked_template(
    template: Mapping[str, Any] | None, container: str, image: str, where: str = "template"
) -> dict[str, Any]:
    """A copy of `template` with `container` running `image`, after checking what a person writes.

    Args:
        template: a PodTemplateSpec (`metadata`, `spec`), or None for one container alone.
        container: the container that runs the release's image (added when missing).
        image: the image by digest.
        where: the template's path in the document, for messages (e.g. spec.template).

    Raises:
        SpecError: a container, resource quantity, probe, port or env entry is malformed; the
            message names its path, e.g. `spec.template.spec.containers[0].resources.limits.memory`.
    """
    pod = copy.deepcopy(dict(_mapping(template, where)))
    meta = _mapping(pod.get("metadata"), f"{where}.metadata")
    for key in ("labels", "annotations"):
        for k, v in _mapping(meta.get(key), f"{where}.metadata.{key}").items():
            if not isinstance(v, str):
                raise _fail(f"{where}.metadata.{key}.{k}", f"{v!r} must be a string: quote it")
    body = dict(_mapping(pod.get("spec"), f"{where}.spec"))
    listed = _list(body.get("containers"), f"{where}.spec.containers")
    containers = [
        _container(c, f"{where}.spec.containers[{i}]", container, image)
        for i, c in enumerate(listed)
    ]
    names = [c["name"] for c in containers]
    if len(set(names)) != len(names):
        raise _fail(f"{where}.spec.containers", "two containers share a name")
    if container not in names:
        containers.insert(0, {"name": container, "image": image})
    inits = _list(body.get("initContainers"), f"{where}.spec.initContainers")
    body["initContainers"] = [
        _container(c, f"{where}.spec.initContainers[{i}]", "", image) for i, c in enumerate(inits)
    ] or None
    body["containers"] = containers
    pod["spec"] = {k: v for k, v in body.items() if v is not None}
    return pod
