"""Build a Go program from a pinned module with one line of its source changed, at build time.

Some upstream programs do one thing the local platform cannot have (kube-apiserver refuses
loopback pod IPs; Argo Rollouts' controller listens on 0.0.0.0). The pinned module is copied from
Go's module cache into the cache folder, the one change is made (the old text must occur exactly
once, or the build fails saying so), and the program is built from the copy with `go build
-modfile` (the wrapper go.mod plus a replace of the module by the copy). The copy is removed after
the build; a stamp beside the binary names the patch it was built with, so a changed patch builds
again. Nothing of the upstream source is kept in this repository.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sandbox.errors import PlatformError
from sandbox.install import exclusive
from sandbox.procs import run


@dataclass(frozen=True)
class SourcePatch:
    """One change to one file of a pinned Go module, and the program built from it."""

    component: str  # who builds it, for errors
    module: str  # e.g. k8s.io/kubernetes
    version: str  # without the v, e.g. 1.34.4
    file: str  # path inside the module
    old: str  # the text taken out; it must occur exactly once
    new: str
    package: str  # the main package built from the copy
    binary: str  # the file name it is built into
    where: str  # the Python file that defines this patch, named when it no longer applies

    @property
    def id(self) -> str:
        """What the stamp beside the binary holds: a digest of the whole patch."""
        text = f"{self.version}\n{self.file}\n{self.old}{self.new}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def stamp(self, bin_dir: Path) -> Path:
        """The file beside the binary that names the patch it was built with."""
        return bin_dir / f"{self.binary}.patch"

    def is_built(self, bin_dir: Path) -> bool:
        """Whether bin_dir holds the binary, built with exactly this patch."""
        stamp = self.stamp(bin_dir)
        return (
            (bin_dir / self.binary).is_file()
            and stamp.is_file()
            and stamp.read_text().strip() == self.id
        )


def _module_dir(patch: SourcePatch, module_dir: Path) -> Path:
    try:
        out = subprocess.run(
            ["go", "mod", "download", "-json", f"{patch.module}@v{patch.version}"],
            cwd=module_dir,
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise PlatformError(
            patch.component,
            f"cannot fetch {patch.module} v{patch.version}: {exc}",
            "check that Go's module proxy is reachable",
        ) from None
    return Path(json.loads(out)["Dir"])


def _patched_copy(patch: SourcePatch, source: Path, dest: Path) -> None:
    """Copy the module to dest (writable) with the patch made."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(source, dest, copy_function=shutil.copyfile)
    for root, _dirs, _files in os.walk(dest):
        os.chmod(root, 0o755)  # the module cache's folders are read-only
    target = dest / patch.file
    text = target.read_text()
    if text.count(patch.old) != 1:
        raise PlatformError(
            patch.component,
            f"{patch.module} v{patch.version} {patch.file} no longer has the patched text once",
            f"update the patch in {patch.where} for this version",
        )
    target.write_text(text.replace(patch.old, patch.new))


def build(patch: SourcePatch, module_dir: Path, bin_dir: Path, ldflags: str = "") -> float:
    """Build the patched program into bin_dir (replacing it atomically); return the seconds."""
    go = shutil.which("go")
    if not go:
        raise PlatformError(patch.component, "the Go toolchain is missing", "install Go")
    with exclusive(bin_dir.with_name(bin_dir.name + ".lock")):
        if patch.is_built(bin_dir):
            return 0.0  # another `sandbox up` built it while this one waited
        started = time.monotonic()
        bin_dir.mkdir(parents=True, exist_ok=True)
        copy = bin_dir.with_name(f"{bin_dir.name}-src-{patch.id}")
        _patched_copy(patch, _module_dir(patch, module_dir), copy)
        try:
            with tempfile.TemporaryDirectory(dir=bin_dir.parent) as tmp:
                modfile = Path(tmp) / "go.mod"
                gomod = (module_dir / "go.mod").read_text()
                modfile.write_text(f"{gomod}\nreplace {patch.module} => {copy}\n")
                shutil.copyfile(module_dir / "go.sum", Path(tmp) / "go.sum")
                argv = [go, "build", "-modfile", str(modfile), "-trimpath"]
                argv += ["-ldflags", f"-s -w {ldflags}".strip(), "-o", f"{tmp}/{patch.binary}"]
                env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}
                fix = "see the go build output above"
                run([*argv, patch.package], patch.component, fix, env=env, cwd=module_dir)
                os.replace(Path(tmp) / patch.binary, bin_dir / patch.binary)
        finally:
            shutil.rmtree(copy, ignore_errors=True)
        patch.stamp(bin_dir).write_text(patch.id + "\n")
        return time.monotonic() - started
