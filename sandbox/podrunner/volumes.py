"""A pod's file volumes as a kubelet fills them, written to a host folder, mounted read-only.

Projected (ServiceAccount token, CA, namespace), configMap, secret and downwardAPI volumes.

The ServiceAccount admission plugin adds a projected `kube-api-access-*` volume to every pod whose
account automounts its token; its token comes from the TokenRequest API, bound to the pod (it dies
with it) and renewed at 80% of its life, as a kubelet does. Pure where it can be: `files` decides
what to write; `write` writes it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sandbox.podrunner.spec import Lookup, SpecError, field_value

# token_for(pod, audience, seconds) -> (token, seconds until it expires)
TokenFor = Callable[[dict, str, int], tuple[str, int]]
DEFAULT_MODE = 0o644  # the API's defaultMode for these volumes (420)
TOKEN_SECONDS = 3607  # what admission asks for; the apiserver may grant longer
RENEW_AT = 0.8  # a kubelet renews a projected token once 80% of its life is spent


@dataclass
class Volume:
    """One volume the container mounts: its files (relative path -> content, mode) and where."""

    name: str
    mount_path: str
    files: dict[str, tuple[bytes, int]]
    renew_in: float | None = None  # seconds until its token should be renewed, if it has one


def _items(data: dict[str, str], items: list[dict] | None, mode: int) -> dict[str, tuple]:
    if not items:
        return {key: (value.encode(), mode) for key, value in data.items()}
    return {
        i["path"]: (data[i["key"]].encode(), int(i.get("mode", mode)))
        for i in items
        if i["key"] in data
    }


def _source(kind: str, pod: dict, ref: dict, lookup: Lookup, mode: int) -> dict[str, tuple]:
    data = lookup(kind, pod["metadata"]["namespace"], ref.get("name") or ref.get("secretName"))
    if data is None:
        if ref.get("optional"):
            return {}
        name = ref.get("name") or ref.get("secretName")
        raise SpecError("CreateContainerConfigError", f"{kind} {name} not found for a volume")
    wanted = {i["key"] for i in ref.get("items") or []}
    if (missing := wanted - set(data)) and not ref.get("optional"):
        raise SpecError("CreateContainerConfigError", f"{kind} keys {sorted(missing)} not found")
    return _items(data, ref.get("items"), mode)


def _downward(pod: dict, items: list[dict], mode: int) -> dict[str, tuple]:
    files = {}
    for item in items:
        if "fieldRef" not in item:
            raise SpecError("CreateContainerConfigError", "downwardAPI resourceFieldRef volumes")
        value = field_value(pod, item["fieldRef"]["fieldPath"])
        files[item["path"]] = (value.encode(), int(item.get("mode", mode)))
    return files


def _projected(pod: dict, spec: dict, lookup: Lookup, token_for: TokenFor) -> Volume:
    mode, files, renew = int(spec.get("defaultMode", DEFAULT_MODE)), {}, None
    for source in spec.get("sources") or []:
        if token := source.get("serviceAccountToken"):
            seconds = int(token.get("expirationSeconds") or TOKEN_SECONDS)
            value, valid = token_for(pod, token.get("audience") or "", seconds)
            files[token["path"]] = (value.encode(), mode)
            renew = valid * RENEW_AT if renew is None else min(renew, valid * RENEW_AT)
        elif ref := source.get("configMap"):
            files.update(_source("configmap", pod, ref, lookup, mode))
        elif ref := source.get("secret"):
            files.update(_source("secret", pod, ref, lookup, mode))
        elif down := source.get("downwardAPI"):
            files.update(_downward(pod, down.get("items") or [], mode))
        else:
            raise SpecError("CreateContainerConfigError", f"projected source {sorted(source)}")
    return Volume("", "", files, renew)


def files(pod: dict, lookup: Lookup, token_for: TokenFor) -> list[Volume]:
    """The file volumes the pod's first container mounts, with what each holds.

    emptyDir mounts are the runner's tmpfs (spec.run_spec); any other volume type is refused.

    Raises:
        SpecError: a volume the runner cannot fill (a missing ConfigMap or Secret, a hostPath).
    """
    spec, container = pod["spec"], pod["spec"]["containers"][0]
    by_name = {v["name"]: v for v in spec.get("volumes") or []}
    volumes = []
    for mount in container.get("volumeMounts") or []:
        raw = by_name.get(mount["name"])
        if raw is None:
            raise SpecError("CreateContainerConfigError", f"volume {mount['name']} not found")
        if "emptyDir" in raw:
            continue
        if mount.get("subPath"):
            raise SpecError("CreateContainerConfigError", "subPath mounts are not supported here")
        if "projected" in raw:
            volume = _projected(pod, raw["projected"], lookup, token_for)
        elif "configMap" in raw:
            mode = int(raw["configMap"].get("defaultMode", DEFAULT_MODE))
            volume = Volume("", "", _source("configmap", pod, raw["configMap"], lookup, mode))
        elif "secret" in raw:
            mode = int(raw["secret"].get("defaultMode", DEFAULT_MODE))
            volume = Volume("", "", _source("secret", pod, raw["secret"], lookup, mode))
        elif "downwardAPI" in raw:
            down = raw["downwardAPI"]
            mode = int(down.get("defaultMode", DEFAULT_MODE))
            volume = Volume("", "", _downward(pod, down.get("items") or [], mode))
        else:
            kind = next((k for k in raw if k != "name"), "?")
            raise SpecError("CreateContainerConfigError", f"{kind} volumes are not supported here")
        volume.name, volume.mount_path = mount["name"], mount["mountPath"]
        volumes.append(volume)
    return volumes


def write(root: Path, volumes: list[Volume]) -> dict[str, dict[str, str]]:
    """Write each volume under `root/<name>`; Docker's read-only binds of those folders.

    Each file is replaced atomically (a renewed token is never half-written or missing), and files
    a volume no longer holds are removed.
    """
    binds = {}
    for volume in volumes:
        folder = root / volume.name
        folder.mkdir(parents=True, exist_ok=True, mode=0o755)
        for rel, (content, mode) in volume.files.items():
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_bytes(content)
            tmp.chmod(mode)
            tmp.replace(path)
        kept = {folder / rel for rel in volume.files}
        for path in sorted(folder.rglob("*"), reverse=True):
            if path.is_file() and path not in kept:
                path.unlink()
        binds[str(folder)] = {"bind": volume.mount_path, "mode": "ro"}
    return binds


def remove(root: Path) -> None:
    """Remove a pod's volume folders (the pod is gone)."""
    shutil.rmtree(root, ignore_errors=True)
