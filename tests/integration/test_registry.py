"""The registry is real and checks credentials: push, pull by digest, and refusal of wrong ones."""

from __future__ import annotations

import io
import tarfile
import uuid

import docker
import httpx
import pytest
from pydantic import SecretStr

from blocks import ContainerRegistry
from core.errors import CredentialsError
from sandbox.platform import BLOCK_NAME, Platform


def _context(payload: str) -> io.BytesIO:
    """A build context with a scratch image holding one file (no public base image needed)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in (
            ("Dockerfile", "FROM scratch\nCOPY payload.txt /\n"),
            ("payload.txt", payload),
        ):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def _push(client: docker.DockerClient, repo: str, tag: str) -> str:
    """Push repo:tag and return the digest the registry reported."""
    digest = ""
    for line in client.images.push(repo, tag, stream=True, decode=True):
        if "error" in line:
            raise RuntimeError(line["error"])
        digest = line.get("aux", {}).get("Digest", digest)
    return digest


@pytest.fixture
def docker_client(platform: Platform):
    client = docker.DockerClient(base_url=platform.docker.env()["DOCKER_HOST"])
    yield client
    client.close()


def test_push_and_pull_by_digest_with_block_credentials(platform: Platform, docker_client):
    registry = ContainerRegistry.load(BLOCK_NAME)
    registry.check()
    registry.login(docker_client)
    repo = f"{registry.address}/sandbox/probe"
    tag = uuid.uuid4().hex[:12]
    docker_client.images.build(fileobj=_context(tag), custom_context=True, tag=f"{repo}:{tag}")
    digest = _push(docker_client, repo, tag)
    assert digest.startswith("sha256:")

    user, password = platform.registry.credentials()
    manifest = httpx.get(
        f"{registry.url}/v2/sandbox/probe/manifests/{tag}",
        auth=(user, password.get_secret_value()),
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    assert manifest.status_code == 200
    assert manifest.headers["Docker-Content-Digest"] == digest

    docker_client.images.remove(f"{repo}:{tag}", force=True)
    pulled = docker_client.images.pull(f"{repo}@{digest}")
    assert f"{repo}@{digest}" in pulled.attrs["RepoDigests"]


def test_wrong_credentials_are_refused(platform: Platform, docker_client):
    good = ContainerRegistry.load(BLOCK_NAME)
    wrong = ContainerRegistry(
        address=good.address,
        username=good.username,
        password=SecretStr("not-the-password"),
        insecure=True,
    )
    with pytest.raises(CredentialsError) as err:
        wrong.check()
    assert "not-the-password" not in str(err.value)
    with pytest.raises(CredentialsError):
        wrong.login(docker.DockerClient(base_url=platform.docker.env()["DOCKER_HOST"]))

    anonymous = httpx.get(f"{good.url}/v2/_catalog")
    assert anonymous.status_code == 401

    repo = f"{good.address}/sandbox/refused"
    docker_client.images.build(fileobj=_context("x"), custom_context=True, tag=f"{repo}:v1")
    stranger = docker.DockerClient(base_url=platform.docker.env()["DOCKER_HOST"])
    with pytest.raises(RuntimeError, match=r"(?i)auth|unauthorized"):
        for line in stranger.images.push(
            repo,
            "v1",
            stream=True,
            decode=True,
            auth_config={"username": "intruder", "password": "guess"},
        ):
            if "error" in line:
                raise RuntimeError(line["error"])
