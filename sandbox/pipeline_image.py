"""The pipeline's own image, built here: a Debian base made by mmdebstrap, then deploy/image/."""

from __future__ import annotations

import hashlib
import io
import os
import shlex
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import docker
import httpx
from docker.errors import DockerException, ImageNotFound

from sandbox.errors import PlatformError
from sandbox.install import ensure_debian, exclusive
from sandbox.platform import Platform
from sandbox.settings import Settings

NAME = "pipeline-image"
ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = "deploy/image/Dockerfile"
PRODUCT = ("blocks", "core", "flows", "tasks", "deployments", "cli")  # as the Dockerfile copies
TOP_FILES = ("pyproject.toml", "uv.lock", "prefect.yaml", DOCKERFILE)
REPOSITORY = "kyb-pipeline"
UV_VERSION = "0.13.9"  # the Makefile's uv, and the Dockerfile's default UV image
SUITE, MIRROR, PACKAGES = "bookworm", "http://deb.debian.org/debian", ("python3", "ca-certificates")
CA_DIR = Path("/usr/local/share/ca-certificates")  # this machine's added CAs (its TLS egress)
# merged /usr by a hook rather than the usrmerge package (and its perl); no docs, man pages, locales
MMDEBSTRAP = (
    "--variant=minbase",
    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
    *(f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("doc", "man", "info", "locale")),
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
)
IMPORT_CHANGES = [  # `docker import` gives an image no config: what a Dockerfile's base expects
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["python3"]',
]
MANIFESTS = ",".join(
    f"application/vnd.{t}+json"
    for t in ("docker.distribution.manifest.v2", "oci.image.manifest.v1")
)


def _hash(*parts: bytes) -> str:
    return hashlib.sha256(b"\0".join(hashlib.sha256(p).digest() for p in parts)).hexdigest()[:16]


def base_tag() -> str:
    """The base image's tag, keyed by its recipe: suite, mirror, packages, options, CA files."""
    cas = sorted(CA_DIR.glob("*.crt"))
    recipe = [SUITE, MIRROR, *PACKAGES, *MMDEBSTRAP]
    return f"kyb-debian:{SUITE}-" + _hash(
        *(s.encode() for s in recipe), *(p.name.encode() + p.read_bytes() for p in cas)
    )


def rootfs(cache: Path | None = None) -> Path:
    """The base's root file system: a tarball in `cache` (the platform's), made once by mmdebstrap.

    Raises:
        PlatformError: mmdebstrap is missing, fails or takes longer than 15 minutes.
    """
    out = (cache or Settings().cache) / "debian" / f"{base_tag().split(':')[1]}.tar"
    if out.is_file():
        return out
    ensure_debian(NAME, {"mmdebstrap": "mmdebstrap"})
    out.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(out.with_suffix(".lock")):
        if out.is_file():
            return out  # another process made it while this one waited
        cas = [shlex.quote(str(p)) for p in sorted(CA_DIR.glob("*.crt"))]
        hooks = [f"--customize-hook=copy-in {' '.join(cas)} {CA_DIR}"] if cas else []
        hooks.append('--customize-hook=chroot "$1" update-ca-certificates')
        part = out.with_suffix(".part.tar")
        argv = ["mmdebstrap", *MMDEBSTRAP, f"--include={','.join(PACKAGES)}", *hooks, SUITE]
        try:
            done = subprocess.run(
                [*argv, str(part), MIRROR], capture_output=True, text=True, timeout=900
            )
        except subprocess.TimeoutExpired:
            raise PlatformError(NAME, "mmdebstrap ran over 15 minutes", f"check {MIRROR}") from None
        if done.returncode != 0:
            part.unlink(missing_ok=True)
            raise PlatformError(
                NAME,
                f"mmdebstrap failed: {done.stderr[-1500:]}",
                f"check that {MIRROR} answers and mmdebstrap runs as root (or in unshare mode)",
            )
        part.rename(out)
    return out


def _exists(dc: docker.DockerClient, tag: str) -> bool:
    try:
        dc.images.get(tag)
    except ImageNotFound:
        return False
    return True


def import_rootfs(dc: docker.DockerClient, tarball: Path, tag: str) -> str:
    """`docker import` a root file system tarball as image `tag` (with a PATH and a CMD)."""
    repo, name = tag.split(":")
    with tarball.open("rb") as f:  # a file object, so the SDK's client timeout holds
        result = dc.api.import_image(f, repo, name, changes=IMPORT_CHANGES)
    if "error" in result:
        raise PlatformError(NAME, f"docker import of {tag} failed: {result}", "see dockerd's log")
    return tag


def base(dc: docker.DockerClient, cache: Path | None = None) -> str:
    """The Debian base image (`kyb-debian:bookworm-<recipe hash>`), imported if Docker lacks it."""
    tag = base_tag()
    return tag if _exists(dc, tag) else import_rootfs(dc, rootfs(cache), tag)


def uv_image(dc: docker.DockerClient) -> str:
    """A scratch image `kyb-uv:<version>` holding this machine's uv at /uv (the Dockerfile's UV).

    Raises:
        PlatformError: no uv binary of the pinned version is found.
    """
    tag = f"kyb-uv:{UV_VERSION}"
    if _exists(dc, tag):
        return tag
    found = os.environ.get("UV") or shutil.which("uv")  # `uv run` sets UV: the binary, not a shim
    fix = f"install uv {UV_VERSION} (`pip install uv=={UV_VERSION}`) or set UV to its binary"
    with open(found or os.devnull, "rb") as head:
        if not found or head.read(4) != b"\x7fELF":
            raise PlatformError(NAME, f"no uv binary found (found {found!r}, a shim?)", fix)
    try:
        out = subprocess.run(
            [found, "--version"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PlatformError(NAME, f"{found} --version failed: {exc}", fix) from None
    if not out.startswith(f"uv {UV_VERSION}"):
        raise PlatformError(NAME, f"{found} is {out.strip()!r}, not {UV_VERSION}", fix)
    files = {"Dockerfile": b"FROM scratch\nCOPY uv /uv\n", "uv": Path(found).read_bytes()}
    _build(dc, _tar(files), tag, "Dockerfile", {})
    return tag


def _context() -> dict[str, bytes]:
    names = list(TOP_FILES)
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                names.append(str(path.relative_to(ROOT)))
    return {name: (ROOT / name).read_bytes() for name in names}


def _tar(files: dict[str, bytes]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():  # fixed owner, mode and time: Docker's cache keys hold
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755 if data[:4] == b"\x7fELF" else 0o644
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def _build(
    dc: docker.DockerClient,
    context: io.BytesIO,
    tag: str,
    dockerfile: str,
    args: dict[str, str],
    nocache: bool = False,
) -> None:
    """Build with the legacy builder on the host network (dockerd has no bridge), 30 min at most.

    `nocache`: every step runs again, as on a new machine (the dependencies downloaded anew).
    """
    deadline, tail = time.monotonic() + 1800, []
    stream = dc.api.build(
        fileobj=context,
        custom_context=True,
        tag=tag,
        dockerfile=dockerfile,
        buildargs=args,
        network_mode="host",
        nocache=nocache,
        rm=True,
        forcerm=True,
        decode=True,
    )
    for line in stream:
        tail = [*tail[-30:], line.get("stream", "")]
        if "error" in line or time.monotonic() > deadline:
            log = "".join(tail)[-2000:]
            error = line.get("error", "ran over 30 minutes")
            raise PlatformError(NAME, f"building {tag} failed: {error}\n{log}", "see the build log")


def _registry_digest(platform: Platform, tag: str) -> str | None:
    """The digest of kyb-pipeline:`tag` in the platform's registry, or None when it lacks it."""
    user, password = platform.registry.credentials()
    url = f"http://{platform.registry.address}/v2/{REPOSITORY}/manifests/{tag}"
    try:
        got = httpx.head(
            url, auth=(user, password.get_secret_value()), headers={"Accept": MANIFESTS}, timeout=10
        )
    except httpx.HTTPError as exc:
        raise PlatformError(
            NAME, f"registry unreachable: {exc}", "run `uv run sandbox up`"
        ) from None
    if got.status_code == 404:
        return None
    if got.status_code != 200 or "Docker-Content-Digest" not in got.headers:
        raise PlatformError(NAME, f"HEAD {url} answered {got.status_code}", "check the registry")
    return got.headers["Docker-Content-Digest"]


def build(dc: docker.DockerClient, tag: str, nocache: bool = False) -> str:
    """Build the image of this tree as local `tag` (not pushed); returns the tag."""
    _build(dc, _tar(_context()), tag, DOCKERFILE, {"BASE": base(dc), "UV": uv_image(dc)}, nocache)
    return tag


def build_and_push(platform: Platform) -> str:
    """Build the pipeline's image if the registry lacks this code and lock; return it by digest.

    The tag hashes the Dockerfile, pyproject.toml, uv.lock, prefect.yaml, the product packages'
    files and the base's and uv's tags, so an unchanged tree costs one registry request.

    Raises:
        PlatformError: Docker or the registry is down, or the base, the build or the push failed.
    """
    files = _context()
    extra = (base_tag().encode(), f"kyb-uv:{UV_VERSION}".encode())
    tag = _hash(*extra, *(name.encode() + b"\0" + data for name, data in files.items()))
    repo = f"{platform.registry.address}/{REPOSITORY}"
    digest = _registry_digest(platform, tag)
    if digest:
        return f"{repo}@{digest}"
    user, password = platform.registry.credentials()
    auth = {"username": user, "password": password.get_secret_value()}
    try:
        dc = docker.DockerClient(base_url=platform.docker.env()["DOCKER_HOST"], timeout=600)
        args = {"BASE": base(dc), "UV": uv_image(dc)}
        _build(dc, _tar(files), f"{repo}:{tag}", DOCKERFILE, args)
        for line in dc.images.push(repo, tag, auth_config=auth, stream=True, decode=True):
            if "error" in line:
                raise PlatformError(NAME, f"push of {repo}:{tag} failed: {line['error']}")
            digest = (line.get("aux") or {}).get("Digest", digest)
    except DockerException as exc:
        raise PlatformError(NAME, f"Docker failed: {exc}", "run `uv run sandbox up`") from None
    if not digest:
        raise PlatformError(NAME, f"no digest pushed for {repo}:{tag}", "see the registry's log")
    return f"{repo}@{digest}"
