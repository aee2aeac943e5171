"""Install what the platform needs: Debian packages by name, Go binaries built into the cache."""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sandbox.errors import PlatformError
from sandbox.procs import run

_apt_updated = False


def ensure_debian(component: str, programs: dict[str, str]) -> None:
    """Install the Debian package of each missing program ({program: package})."""
    global _apt_updated
    missing = sorted({pkg for prog, pkg in programs.items() if not _which(prog)})
    if not missing:
        return
    if os.geteuid() != 0:
        raise PlatformError(
            component, f"missing Debian packages {missing}", f"run: sudo apt-get install {missing}"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    fix = "check that Debian's package mirror is reachable, then run `sandbox up` again"
    if not _apt_updated:
        run(["apt-get", "update", "-qq"], component, fix, env=env)
        _apt_updated = True
    run(["apt-get", "install", "-y", "-qq", *missing], component, fix, env=env)


def _which(program: str) -> str | None:
    return shutil.which(program) or shutil.which(program, path="/usr/sbin:/sbin")


def which(component: str, program: str) -> str:
    """Return the path of an installed program or raise naming the component."""
    found = _which(program)
    if not found:
        raise PlatformError(component, f"{program} is not installed", "run `sandbox up`")
    return found


def go_build(
    component: str,
    module_dir: Path | None,
    packages: list[str],
    out: Path,
    ldflags: str = "",
    wants: tuple[str, ...] = (),
) -> float:
    """Build Go main packages into out (a cache folder); return the seconds it took.

    module_dir is the wrapper module to build in (None: `go install pkg@version` style packages).
    The binaries land in a temporary folder first and move into place only when all built, so an
    interrupted build never leaves a half-filled cache. `wants` names the files that show the
    build is done (default: any file in out), for when another process built it meanwhile.
    """
    go = shutil.which("go")
    if not go:
        raise PlatformError(component, "the Go toolchain is missing", "install Go 1.24 or newer")
    with exclusive(out.with_name(out.name + ".lock")):
        done = all((out / w).is_file() for w in wants) if wants else any(out.glob("*"))
        if out.is_dir() and done:
            return 0.0  # another `sandbox up` built it while this one waited for the lock
        return _go_build(component, go, module_dir, packages, out, ldflags)


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) for a with-block, across processes.

    Two `sandbox up` at once (two terminals, a test session beside a demo) otherwise build into
    the same folder, and one deletes the other's half-done build.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _go_build(
    component: str, go: str, module_dir: Path | None, packages: list[str], out: Path, ldflags: str
) -> float:
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}
    flags = ["-trimpath", "-ldflags", f"-s -w {ldflags}".strip()]
    start = time.monotonic()
    fix = "check the Go module proxy is reachable and the log above; then `sandbox up` again"
    if module_dir is None:
        run([go, "install", *flags, *packages], component, fix, env={**env, "GOBIN": str(tmp)})
    else:
        run(
            [go, "build", *flags, "-o", f"{tmp}/", *packages],
            component,
            fix,
            env=env,
            cwd=module_dir,
        )
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return time.monotonic() - start
