"""The example service's image for tests and benchmarks that run real pods.

Built once from examples/kyb-platform (its build-context.sh, then a Docker build), then pushed to
the platform's registry as variants that differ only in their environment (a version, a fault
rate), so the pod runner pulls each by digest.
"""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import docker

from sandbox.errors import PlatformError
from sandbox.platform import Platform

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "kyb-platform"


def docker_client(platform: Platform, timeout: int = 120) -> docker.DockerClient:
    """A client of the platform's Docker engine."""
    return docker.DockerClient(base_url=platform.docker.env()["DOCKER_HOST"], timeout=timeout)


def build_example(dc: docker.DockerClient, folder: Path, tag: str) -> str:
    """Build the example service (its build-context.sh into `folder`) as local image `tag`."""
    build = subprocess.run(
        [str(EXAMPLE / "build-context.sh"), str(folder)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if build.returncode != 0:
        raise PlatformError(
            "example", f"build-context.sh failed: {build.stderr[-800:]}", "see above"
        )
    dc.images.build(path=str(folder), tag=tag, rm=True, forcerm=True)
    return tag


def push(
    platform: Platform,
    dc: docker.DockerClient,
    ref: str,
    version: str = "",
    env: dict[str, str] | None = None,
) -> str:
    """Push local `ref` (first made a `version` of it, if given) to the platform's registry.

    `env` adds environment variables to that version (e.g. KYB_ERROR_RATE: a faulty version).
    The local copy is removed, so a runner has to pull it. Returns the pushed image by digest.
    """
    if version:
        lines = [f"ENV {k}={v}" for k, v in {"KYB_VERSION": version, **(env or {})}.items()]
        dockerfile = io.BytesIO("\n".join([f"FROM {ref}", *lines, ""]).encode())
        ref = f"{ref.rsplit(':', 1)[0]}:{ref.rsplit(':', 1)[1]}-{version}"
        dc.images.build(fileobj=dockerfile, tag=ref, rm=True, forcerm=True)
    user, password = platform.registry.credentials()
    auth = {"username": user, "password": password.get_secret_value()}
    digest = None
    for line in dc.images.push(ref, auth_config=auth, stream=True, decode=True):
        if "error" in line:
            raise PlatformError("example", f"push of {ref} failed: {line['error']}", "see above")
        digest = (line.get("aux") or {}).get("Digest", digest)
    if not digest:
        raise PlatformError("example", f"no digest pushed for {ref}", "see the registry's log")
    dc.images.remove(ref, force=True)
    return f"{ref.rsplit(':', 1)[0]}@{digest}"
