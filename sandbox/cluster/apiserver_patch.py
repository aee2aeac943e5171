"""kube-apiserver built to accept loopback endpoint addresses (the local platform's pod IPs).

Upstream refuses Endpoints and EndpointSlice addresses in 127.0.0.0/8 (ValidateEndpointIP in
k8s.io/kubernetes/pkg/apis/core/validation): a real pod never has one. Here every pod IP is a
loopback address by design (the network rule), so without this a Service's EndpointSlices stay
empty and nothing (Traefik, the tests) can route to the pods. The pinned module is copied into
the cache, that one check is taken out (it must match exactly once, or the build fails saying
so), and kube-apiserver is built from the copy with `go build -modfile` (a go.mod that replaces
k8s.io/kubernetes by the copy). Nothing of Kubernetes' source is kept in this repository.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from sandbox.errors import PlatformError
from sandbox.install import exclusive
from sandbox.procs import run
from sandbox.settings import K8S_VERSION

PACKAGE = "k8s.io/kubernetes/cmd/kube-apiserver"
FILE = "pkg/apis/core/validation/validation.go"
CHECK = (
    "\tif ip.IsLoopback() {\n"
    "\t\tallErrs = append(allErrs, field.Invalid(fldPath, ipAddress, "
    '"may not be in the loopback range (127.0.0.0/8, ::1/128)"))\n'
    "\t}\n"
)
INSTEAD = (
    "\t// kyb sandbox: loopback allowed, the local platform's pod IPs are loopback addresses\n"
)
PATCH_ID = hashlib.sha256(f"{K8S_VERSION}\n{FILE}\n{CHECK}{INSTEAD}".encode()).hexdigest()[:16]
STAMP = "kube-apiserver.patch"  # beside the binary: the PATCH_ID it was built with


def is_patched(bin_dir: Path) -> bool:
    """Whether bin_dir's kube-apiserver was built with this patch."""
    stamp = bin_dir / STAMP
    return (
        (bin_dir / "kube-apiserver").is_file()
        and stamp.is_file()
        and (stamp.read_text().strip() == PATCH_ID)
    )


def _module_dir(module_dir: Path) -> Path:
    try:
        out = subprocess.run(
            ["go", "mod", "download", "-json", f"k8s.io/kubernetes@v{K8S_VERSION}"],
            cwd=module_dir,
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise PlatformError(
            "cluster", f"cannot fetch k8s.io/kubernetes v{K8S_VERSION}: {exc}", "check Go's proxy"
        ) from None
    return Path(json.loads(out)["Dir"])


def _patched_copy(source: Path, dest: Path) -> None:
    """Copy the module to dest (writable) with the loopback check taken out."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(source, dest, copy_function=shutil.copyfile)
    for root, _dirs, _files in os.walk(dest):
        os.chmod(root, 0o755)  # the module cache's folders are read-only
    target = dest / FILE
    text = target.read_text()
    if text.count(CHECK) != 1:
        raise PlatformError(
            "cluster",
            f"k8s.io/kubernetes v{K8S_VERSION} {FILE} no longer has the loopback check once",
            "update CHECK in sandbox/cluster/apiserver_patch.py for this Kubernetes version",
        )
    target.write_text(text.replace(CHECK, INSTEAD))


def build(component: str, module_dir: Path, bin_dir: Path, ldflags: str) -> float:
    """Build the patched kube-apiserver into bin_dir (replacing it atomically); return seconds."""
    go = shutil.which("go")
    if not go:
        raise PlatformError(component, "the Go toolchain is missing", "install Go 1.24 or newer")
    with exclusive(bin_dir.with_name(bin_dir.name + ".lock")):
        if is_patched(bin_dir):
            return 0.0  # another `sandbox up` built it while this one waited
        started = time.monotonic()
        bin_dir.mkdir(parents=True, exist_ok=True)
        copy = bin_dir.with_name(f"k8s-v{K8S_VERSION}-src-{PATCH_ID}")
        _patched_copy(_module_dir(module_dir), copy)
        try:
            with tempfile.TemporaryDirectory(dir=bin_dir.parent) as tmp:
                modfile = Path(tmp) / "go.mod"
                gomod = (module_dir / "go.mod").read_text()
                modfile.write_text(f"{gomod}\nreplace k8s.io/kubernetes => {copy}\n")
                shutil.copyfile(module_dir / "go.sum", Path(tmp) / "go.sum")
                argv = [go, "build", "-modfile", str(modfile), "-trimpath"]
                argv += ["-ldflags", f"-s -w {ldflags}", "-o", f"{tmp}/kube-apiserver", PACKAGE]
                env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}
                run(argv, component, "see the go build output above", env=env, cwd=module_dir)
                os.replace(Path(tmp) / "kube-apiserver", bin_dir / "kube-apiserver")
        finally:
            shutil.rmtree(copy, ignore_errors=True)
        (bin_dir / STAMP).write_text(PATCH_ID + "\n")
        return time.monotonic() - started
