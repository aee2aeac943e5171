"""Registry token auth on a registry that really answers with Bearer challenges.

The platform's token-registry is Debian's docker-registry (distribution 2.8) with `auth: token`,
trusting the sandbox's token issuer (sandbox/token_issuer.py, the stand-in for Harbor's or GHCR's
token service). Users: `pipeline` (pull and push everywhere) and `reader` (pull under shared/).
"""

from __future__ import annotations

import contextlib
import io
import secrets
import socket
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest
from pydantic import SecretStr

from blocks import ContainerRegistry
from blocks.registry_manifests import manifest_digest
from core.ci import GitRef, image_tags
from core.errors import CredentialsError, TransientError
from sandbox.components.token_registry import READER
from sandbox.platform import TOKEN_BLOCK_NAME, Platform
from tasks import images

WHERE = f"block 'kyb-container-registry/{TOKEN_BLOCK_NAME}'"


@pytest.fixture
def registry(platform: Platform) -> ContainerRegistry:
    block = ContainerRegistry.load(TOKEN_BLOCK_NAME)
    challenge = httpx.get(f"{block.url}/v2/", timeout=5).headers["WWW-Authenticate"]
    assert challenge.startswith(f'Bearer realm="{platform.token_registry.realm}"'), challenge
    return block


@pytest.fixture
def docker_client(platform: Platform) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=platform.docker.env()["DOCKER_HOST"], timeout=120)
    yield client
    client.close()


def _as(registry: ContainerRegistry, **update: object) -> ContainerRegistry:
    """The same saved block with other credentials (still named as the saved block)."""
    return registry.model_copy(update=update)


def _pushed(client: docker.DockerClient, registry: ContainerRegistry, repository: str) -> str:
    """Build a scratch image, push it with the daemon's login, return the digest push reported."""
    tag, name = secrets.token_hex(6), f"{registry.address}/{repository}"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, text in (("Dockerfile", "FROM scratch\nCOPY id /\n"), ("id", tag)):
            info = tarfile.TarInfo(path)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    buf.seek(0)
    registry.login(client)
    client.images.build(fileobj=buf, custom_context=True, tag=f"{name}:{tag}")
    digest = ""
    try:
        for line in client.images.push(name, tag, stream=True, decode=True):
            assert "error" not in line, line
            digest = line.get("aux", {}).get("Digest", digest)
    finally:
        client.images.remove(f"{name}:{tag}", force=True)
    assert digest.startswith("sha256:")
    return f"{tag}@{digest}"


@pytest.fixture
def reader(platform: Platform, registry: ContainerRegistry) -> ContainerRegistry:
    """The saved block with the credentials of `reader` (pull on shared/* only)."""
    return _as(registry, username=READER, password=platform.token_registry.credentials(READER)[1])


def test_check_passes_with_the_blocks_credentials(registry, reader) -> None:
    registry.check()
    reader.check()


def test_wrong_password_names_the_block_and_hides_the_secret(registry) -> None:
    wrong = _as(registry, password=SecretStr("not-the-pipeline-password"))
    for call in (wrong.check, lambda: manifest_digest(wrong, "kyb/api", "v1")):
        with pytest.raises(CredentialsError) as info:
            call()
        text = str(info.value)
        assert "refused the credentials of user 'pipeline'" in text, text
        assert WHERE in text and "token service http://127.0.0.1:" in text, text
        assert "not-the-pipeline-password" not in text + repr(info.value)
        assert registry.password.get_secret_value() not in text


def test_anonymous_is_told_to_set_credentials(registry) -> None:
    anonymous = _as(registry, username=None, password=None)
    for call in (anonymous.check, lambda: manifest_digest(anonymous, "kyb/api", "v1")):
        with pytest.raises(CredentialsError) as info:
            call()
        assert "requires credentials" in str(info.value), info.value
        assert f"set username and password in {WHERE}" in str(info.value)


def test_pushed_digest_is_read_through_the_bearer_flow(registry, docker_client) -> None:
    repository = f"token-test/app-{secrets.token_hex(3)}"
    tag, digest = _pushed(docker_client, registry, repository).split("@")
    assert manifest_digest(registry, repository, tag) == digest
    assert manifest_digest(registry, repository, digest) == digest  # by digest too
    assert manifest_digest(registry, repository, "absent-tag") is None
    assert manifest_digest(registry, "token-test/never-pushed", "v1") is None


def test_a_token_without_the_repositorys_scope_is_refused_naming_it(
    registry, reader, docker_client
) -> None:
    shared = f"shared/app-{secrets.token_hex(3)}"
    tag, digest = _pushed(docker_client, registry, shared).split("@")
    assert manifest_digest(reader, shared, tag) == digest  # granted: pull on shared/*
    private = f"token-test/private-{secrets.token_hex(3)}"
    with pytest.raises(CredentialsError) as info:
        manifest_digest(reader, private, "v1")
    text = str(info.value)
    assert f"refused user 'reader' the scope repository:{private}:pull" in text, text
    assert WHERE in text and reader.password.get_secret_value() not in text


def test_build_and_push_end_to_end(registry, docker_client, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY id /\n")
    (tmp_path / "id").write_text(secrets.token_hex(8))
    ref = GitRef(sha=secrets.token_hex(20), branch="token-auth")
    repository = "token-test/pipeline"
    tags, _ = image_tags(ref)
    try:
        result = images.build_and_push(registry, repository, tmp_path, ref, "https://x/y")
        assert not result.reused
        assert result.reference == f"{registry.address}/{repository}@{result.digest}"
        for tag in tags:
            assert manifest_digest(registry, repository, tag) == result.digest
        again = images.build_and_push(registry, repository, tmp_path, ref, "https://x/y")
        assert again.reused and again.digest == result.digest  # found through a token
    finally:
        for tag in tags:
            with contextlib.suppress(docker.errors.ImageNotFound):
                docker_client.images.remove(f"{registry.address}/{repository}:{tag}", force=True)


@contextlib.contextmanager
def _realm_hung(platform: Platform) -> Iterator[None]:
    """Stop the token issuer and hold its port with a socket that accepts and never answers."""
    issuer = platform.token_registry
    issuer.issuer.stop()
    hung = socket.create_server(("127.0.0.1", issuer.issuer_port))
    try:
        yield
    finally:
        hung.close()
        issuer.up()


def test_token_service_down_or_hung_is_transient_in_bounded_time(platform, registry) -> None:
    anonymous = _as(registry, username=None, password=None)  # never cached: always asks
    with _realm_hung(platform):
        started = time.monotonic()
        with pytest.raises(TransientError) as info:
            anonymous.check(timeout=2)
        realm = platform.token_registry.realm
        assert f"cannot reach the token service {realm}" in str(info.value), info.value
        assert "ReadTimeout" in str(info.value)
        repository = f"token-test/hung-{secrets.token_hex(3)}"  # a scope no token is cached for
        with pytest.raises(TransientError, match="cannot reach the token service"):
            manifest_digest(registry, repository, "v1", timeout=2)
        assert time.monotonic() - started < 15
    platform.token_registry.issuer.stop()
    try:
        with pytest.raises(TransientError, match="ConnectError"):
            anonymous.check(timeout=2)
    finally:
        platform.token_registry.up()
    registry.check()  # back
