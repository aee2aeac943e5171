"""Argo Rollouts' CRDs (argoproj.io/v1alpha1), from its Go module, on both local clusters.

The pipeline reads AnalysisTemplates and ClusterAnalysisTemplates from the cluster, so both
clusters serve Argo Rollouts' five CRDs as the release ships them (`manifests/crds/` of the Go
module `github.com/argoproj/argo-rollouts`, fetched through Go's module proxy into the module
cache: a no-op once there). The DR cluster gets them too: a restore may bring templates back.
The controller is opt-in (sandbox/components/argo_rollouts.py); the CRDs alone let the apiserver
store and serve the objects.

`sandbox up` applies them (server-side, idempotent) right after each cluster comes up
(sandbox/platform.py) and waits until each is Established.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from sandbox.components.traefik import apply
from sandbox.crds import wait_established
from sandbox.errors import PlatformError
from sandbox.procs import run

COMPONENT = "argo-crds"
MODULE = "github.com/argoproj/argo-rollouts"
VERSION = "1.10.1"  # the release a later controller build uses too
GROUP_VERSION = "argoproj.io/v1alpha1"
# manifests/crds/<file> -> the CRD's name, in the order the release's kustomization lists them
CRD_FILES = {
    "rollout-crd.yaml": "rollouts.argoproj.io",
    "experiment-crd.yaml": "experiments.argoproj.io",
    "analysis-run-crd.yaml": "analysisruns.argoproj.io",
    "analysis-template-crd.yaml": "analysistemplates.argoproj.io",
    "cluster-analysis-template-crd.yaml": "clusteranalysistemplates.argoproj.io",
}
CRD_NAMES = tuple(CRD_FILES.values())
DOWNLOAD_TIMEOUT = 300.0  # seconds for a cold download of the module (a ~10 MB zip)
# libyaml when PyYAML has it: the five files are 3 MB, ~2 s with the pure-Python loader
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def module_dir() -> Path:
    """Download the module (a no-op when the module cache has it); return its folder there.

    Runs `go mod download -json` in an empty temporary folder (outside any go.mod, so no
    project's requirements get in the way), with this process's Go environment (GOPROXY,
    GOMODCACHE, GOFLAGS).

    Raises:
        PlatformError: the download fails or times out (names the module; check GOPROXY and
            the network).
    """
    target = f"{MODULE}@v{VERSION}"
    fix = f"check that Go's module proxy serves {target}: `go env GOPROXY` and the network"
    with tempfile.TemporaryDirectory(prefix="kyb-argo-") as empty:
        try:
            argv = ["go", "mod", "download", "-json", target]
            out = run(argv, COMPONENT, cwd=empty, timeout=DOWNLOAD_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise PlatformError(
                COMPONENT, f"downloading {target} took over {DOWNLOAD_TIMEOUT:.0f}s", fix
            ) from None
        except PlatformError as exc:
            why = str(exc).removeprefix(f"[{COMPONENT}] ")
            with contextlib.suppress(ValueError, LookupError, TypeError):  # -json: go's "Error"
                why = json.loads(why.split("failed: ", 1)[1])["Error"]
            raise PlatformError(
                COMPONENT, f"cannot download {target} through Go's module proxy: {why}", fix
            ) from None
    try:
        return Path(json.loads(out)["Dir"])
    except (ValueError, KeyError) as exc:
        raise PlatformError(
            COMPONENT, f"`go mod download -json {target}` printed no Dir ({exc})", fix
        ) from None


def argo_crds() -> list[dict[str, Any]]:
    """Argo Rollouts' five CustomResourceDefinitions at VERSION, in the kustomization's order.

    Raises:
        PlatformError: the module cannot be downloaded, or lacks one of the files.
    """
    folder = module_dir() / "manifests" / "crds"
    crds = []
    for file, name in CRD_FILES.items():
        try:
            crd = yaml.load((folder / file).read_text(), Loader=_LOADER)  # a safe loader
        except (OSError, yaml.YAMLError) as exc:
            raise PlatformError(
                COMPONENT, f"{MODULE}@v{VERSION} has no readable {file}: {exc}"
            ) from None
        kind = crd.get("kind") if isinstance(crd, dict) else None
        if kind != "CustomResourceDefinition" or crd["metadata"]["name"] != name:
            raise PlatformError(COMPONENT, f"{folder / file} is not the CRD {name}")
        crds.append(crd)
    return crds


def install(kubeconfig_path: Path | str, crds: list[dict[str, Any]] | None = None) -> list[str]:
    """Apply Argo Rollouts' CRDs to a cluster (server-side, idempotent); wait until Established.

    Args:
        kubeconfig_path: an administrator's kubeconfig of the cluster.
        crds: the CRDs, when the caller read them already (default: argo_crds()).

    Returns:
        The CRDs' names.

    Raises:
        PlatformError: the cluster is not up, the download fails, or a CRD is not Established.
    """
    from kubernetes import config

    path = Path(kubeconfig_path)
    if not path.is_file():
        raise PlatformError(
            COMPONENT, f"no kubeconfig at {path}: its cluster is not up", "sandbox up"
        )
    crds = argo_crds() if crds is None else crds
    names = [crd["metadata"]["name"] for crd in crds]
    with config.new_client_from_config(str(path)) as api:
        apply(api, crds)
        wait_established(api, names, f"Argo Rollouts' CRDs (v{VERSION})")
    return names
