"""Build and push the application image: metadata-action tags, OCI labels, a verified digest."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from blocks import ContainerRegistry
from blocks.registry_manifests import image_labels, manifest_digest
from core.ci import (
    REVISION,
    BuildFailed,
    BuildLog,
    BuiltImage,
    GitRef,
    ImageResult,
    artifact_key,
    classify_push_error,
    image_tags,
    looks_transient,
    oci_labels,
)
from core.ci.toolenv import check_version
from core.errors import ConfigError, CredentialsError, PipelineError, TransientError
from tasks import RETRIES
from tasks.quality import run_tool


@task(name="prepare-image-context", cache_policy=NO_CACHE, **RETRIES)
def prepare_context(
    source_dir: str | Path,
    out_dir: str | Path | None = None,
    version: str = "0.0.0-dev",
    script: str = "build-context.sh",
    timeout: float = 600,
) -> str:
    """Run the project's context script (the example's build-context.sh.

    static binary, CA bundle, passwd, Dockerfile FROM scratch) so the image builds without pulling a
    base image.

    Args:
        source_dir: the project holding the script.
        out_dir: where the context goes (default: a new temporary folder).
        version: passed to the script as VERSION (compiled into the binary).
        script: the script's path relative to source_dir; it gets out_dir as its argument.
        timeout: seconds the script may take.

    Returns:
        The context folder.

    Raises:
        BuildFailed: the script failed (e.g. the Go build), with its output.
        ConfigError: the version is not a plain word, or the script is outside the project.
    """
    check_version(version)  # data for the script, never a flag
    source = Path(source_dir).resolve()
    program = (source / script).resolve()
    if not program.is_relative_to(source):
        raise ConfigError(f"script {script!r} is outside {source}: give a path inside the project")
    out = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="kyb-context-"))
    proc = run_tool([str(program), str(out)], source, timeout, env={"VERSION": version})
    if proc.returncode != 0:
        text = f"{proc.stderr}\n{proc.stdout}".strip()[-3000:]
        error = TransientError if looks_transient(text) else BuildFailed
        raise error(f"{script} failed (exit {proc.returncode}): {text}", context=str(out))
    return str(out)


def _client(docker_host: str | None, timeout: float) -> docker.DockerClient:
    try:
        if docker_host:
            return docker.DockerClient(base_url=docker_host, timeout=int(timeout))
        return docker.from_env(timeout=int(timeout))
    except docker.errors.DockerException as exc:
        raise TransientError(f"cannot reach the Docker daemon: {exc}") from None


def _build(api: docker.APIClient, context: Path, name: str, labels: dict[str, str]) -> str:
    if not (context / "Dockerfile").is_file():
        raise ConfigError(f"no Dockerfile in the build context {context}: prepare it first")
    log = BuildLog()
    try:
        stream: Any = api.build(
            path=str(context), tag=name, labels=labels, rm=True, forcerm=True, decode=True
        )
        for event in stream:
            log.feed(event)
            if log.error:
                raise BuildFailed(log.failure(), image=name)
    except docker.errors.APIError as exc:
        if exc.status_code is None or exc.status_code >= 500 or exc.status_code == 429:
            raise  # the daemon is busy or failing: transient, retried
        raise BuildFailed(f"the daemon refused the build: {exc.explanation}", image=name) from None
    if not log.image_id:
        raise BuildFailed(f"the build of {name} ended without an image id: {log.failure()}")
    return log.image_id


def _push(api: docker.APIClient, name: str, tag: str) -> str:
    digest = ""
    for event in api.push(name, tag=tag, stream=True, decode=True):
        if "error" in event or "errorDetail" in event:
            text = (event.get("errorDetail") or {}).get("message") or str(event.get("error"))
            kind = classify_push_error(text)
            error = {"credentials": CredentialsError, "transient": TransientError}.get(
                kind, PipelineError
            )
            raise error(f"push of {name}:{tag} failed: {text}")
        digest = (event.get("aux") or {}).get("Digest", digest)
    if not digest:
        raise TransientError(f"push of {name}:{tag} ended without a digest")
    return digest


def _publish(result: ImageResult, app: str) -> None:
    how = "reused (already in the registry; not rebuilt)" if result.reused else "built and pushed"
    md = [f"# Image of {app}: {how}", "", f"`{result.reference}`", "", "| tag |", "|---|"]
    md += [f"| `{t}` |" for t in result.tags]
    if result.labels:
        md += ["", "| label | value |", "|---|---|"]
        md += [f"| {k} | {v} |" for k, v in result.labels.items()]
    create_markdown_artifact("\n".join(md), key=artifact_key("image", app))


def _found(registry: ContainerRegistry, repository: str, ref: GitRef, app: str) -> BuiltImage:
    """The image to build: its name and tags, and the digest to reuse, if any.

    The commit tag's image is reused only when it was built from exactly this commit: its
    org.opencontainers.image.revision label is the full SHA (the tag holds only 7 characters).
    """
    tags, commit_tag = image_tags(ref)
    name = registry.image(repository, commit_tag).rsplit(":", 1)[0]  # validates the names
    existing = manifest_digest(registry, repository, commit_tag) or ""
    if existing:
        revision = (image_labels(registry, repository, commit_tag) or {}).get(REVISION, "")
        if revision != ref.sha:  # the tag holds 7 characters of the commit: not proof enough
            get_run_logger().info(
                "%s:%s exists but was built from %s, not %s: building anew",
                name,
                commit_tag,
                revision or "an unlabelled commit",
                ref.sha,
            )
            return BuiltImage(name=name, repository=repository, tags=tags, app=app)
        get_run_logger().info(
            "reusing %s:%s = %s: already in the registry, no build and no push",
            name,
            commit_tag,
            existing,
        )
        return BuiltImage(
            name=name, repository=repository, tags=[commit_tag], existing=existing, app=app
        )
    return BuiltImage(name=name, repository=repository, tags=tags, app=app)


@contextmanager
def _session(
    registry: ContainerRegistry, docker_host: str | None, timeout: float
) -> Iterator[docker.DockerClient]:
    client = _client(docker_host, timeout)
    try:
        registry.login(client)
        yield client
    finally:
        client.close()


def _build_tagged(
    client: docker.DockerClient,
    image: BuiltImage,
    context_dir: str | Path,
    ref: GitRef,
    source: str,
    created: datetime | None,
) -> BuiltImage:
    labels = oci_labels(source, ref.sha, created, version=image.tags[0], title=image.app)
    image_id = _build(client.api, Path(context_dir), f"{image.name}:{image.tags[0]}", labels)
    get_run_logger().info("built %s (%s) with tags %s", image.name, image_id[:19], image.tags)
    for tag in image.tags[1:]:
        client.api.tag(image_id, image.name, tag)
    return image.model_copy(update={"image_id": image_id, "labels": labels})


def _push_all(client: docker.DockerClient, image: BuiltImage) -> dict[str, str]:
    return {tag: _push(client.api, image.name, tag) for tag in image.tags}  # commit tag last


def _verified(
    registry: ContainerRegistry, image: BuiltImage, digests: dict[str, str]
) -> ImageResult:
    name, commit_tag = image.name, image.tags[-1]
    digest = digests[commit_tag]
    verified = manifest_digest(registry, image.repository, commit_tag)
    if len(set(digests.values())) != 1 or verified != digest:
        raise PipelineError(
            f"digests disagree for {name}: pushed {digests}, registry has {verified}", image=name
        )
    get_run_logger().info("pushed %s@%s (verified through the registry API)", name, digest)
    result = ImageResult(
        reference=f"{name}@{digest}",
        digest=digest,
        tags=image.tags,
        reused=False,
        labels=image.labels,
    )
    _publish(result, image.app)
    return result


def _reused(image: BuiltImage) -> ImageResult:
    result = ImageResult(
        reference=f"{image.name}@{image.existing}",
        digest=image.existing,
        tags=image.tags,
        reused=True,
    )
    _publish(result, image.app)
    return result


@task(name="build-image", cache_policy=NO_CACHE, **RETRIES)
def build_image(
    registry: ContainerRegistry,
    repository: str,
    context_dir: str | Path,
    ref: GitRef,
    source: str,
    app: str = "",
    docker_host: str | None = None,
    created: datetime | None = None,
    timeout: float = 600,
) -> BuiltImage:
    """Build and tag the image in the Docker daemon, without pushing it (see push_image).

    If the registry already has the commit tag, nothing is built: the result carries its digest
    (result.reused). Arguments as build_and_push.

    Returns:
        BuiltImage: the image's name, its tags (commit tag last), image id and labels.

    Raises:
        BuildFailed: the build failed (the failing step and its message).
        CredentialsError: the registry refused the credentials (not retried).
        TransientError: registry 5xx/429 or a daemon/network fault (retried with backoff).
    """
    image = _found(registry, repository, ref, app or repository)
    if image.reused:
        return image
    with _session(registry, docker_host, timeout) as client:
        return _build_tagged(client, image, context_dir, ref, source, created)


@task(name="push-image", cache_policy=NO_CACHE, **RETRIES)
def push_image(
    registry: ContainerRegistry,
    image: BuiltImage,
    docker_host: str | None = None,
    timeout: float = 600,
) -> ImageResult:
    """Push every tag of a built image (commit tag last) and verify its digest in the registry.

    Args:
        registry: the registry block (address, credentials, insecure), as given to build_image.
        image: what build_image returned (a reused image is not pushed again).
        docker_host: the Docker daemon that holds the image.
        timeout: seconds for each call to the Docker daemon.

    Returns:
        ImageResult with reference `registry/repository@sha256:...`.

    Raises:
        CredentialsError: the registry refused the credentials (not retried).
        TransientError: registry 5xx/429 or a daemon/network fault (retried with backoff).
    """
    if image.reused:
        return _reused(image)
    with _session(registry, docker_host, timeout) as client:
        digests = _push_all(client, image)
    return _verified(registry, image, digests)


@task(name="build-and-push", cache_policy=NO_CACHE, **RETRIES)
def build_and_push(
    registry: ContainerRegistry,
    repository: str,
    context_dir: str | Path,
    ref: GitRef,
    source: str,
    app: str = "",
    docker_host: str | None = None,
    created: datetime | None = None,
    timeout: float = 600,
) -> ImageResult:
    """Build the image, push every tag with the block's credentials, verify the digest.

    Tags follow the seed's metadata-action scheme (see core.ci.image_tags), never `latest`;
    the immutable `<branch>-<sha7>` tag is pushed last. If the registry already has it, its
    digest is returned without building (result.reused, and the log says so). One task doing
    build_image then push_image (one daemon session, retried as a whole).

    Args:
        registry: the registry block (address, credentials, insecure).
        repository: the repository inside the registry, e.g. "kyb-platform".
        context_dir: a prepared build context (see prepare_context).
        ref: the branch or pull request and commit being built.
        source: the repository URL for org.opencontainers.image.source.
        app: the application's name (artifact key, image title); default: repository.
        docker_host: the Docker daemon (default: DOCKER_HOST or the local socket).
        created: the build time for the created label (default: now).
        timeout: seconds for each call to the Docker daemon.

    Returns:
        ImageResult with reference `registry/repository@sha256:...`.

    Raises:
        BuildFailed: the build failed (the failing step and its message).
        CredentialsError: the registry refused the credentials (not retried).
        TransientError: registry 5xx/429 or a daemon/network fault (retried with backoff).
    """
    image = _found(registry, repository, ref, app or repository)
    if image.reused:
        return _reused(image)
    with _session(registry, docker_host, timeout) as client:
        image = _build_tagged(client, image, context_dir, ref, source, created)
        digests = _push_all(client, image)
    return _verified(registry, image, digests)
