"""The example service's image for tests that run real pods: built once, pushed to the platform."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import docker

from sandbox.platform import Platform

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kyb-platform"


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
    assert build.returncode == 0, build.stderr
    dc.images.build(path=str(folder), tag=tag, rm=True, forcerm=True)
    return tag


def push(platform: Platform, dc: docker.DockerClient, ref: str, version: str = "") -> str:
    """Push local `ref` (first made a `version` of it, if given) to the platform's registry.

    The local copy is removed, so a runner has to pull it. Returns the pushed image by digest.
    """
    if version:
        dockerfile = io.BytesIO(f"FROM {ref}\nENV KYB_VERSION={version}\n".encode())
        ref = f"{ref.rsplit(':', 1)[0]}:{ref.rsplit(':', 1)[1]}-{version}"
        dc.images.build(fileobj=dockerfile, tag=ref, rm=True, forcerm=True)
    user, password = platform.registry.credentials()
    auth = {"username": user, "password": password.get_secret_value()}
    digest = None
    for line in dc.images.push(ref, auth_config=auth, stream=True, decode=True):
        assert "error" not in line, line
        digest = (line.get("aux") or {}).get("Digest", digest)
    assert digest, f"no digest pushed for {ref}"
    dc.images.remove(ref, force=True)
    return f"{ref.rsplit(':', 1)[0]}@{digest}"
