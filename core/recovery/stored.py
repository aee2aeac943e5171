"""Files Velero stored, read back: size bounds, bounded gunzip, errors that say what to fix."""

from __future__ import annotations

import json
import zlib
from typing import Any

from core.errors import ConfigError, CredentialsError, PipelineError, TransientError

_GZIP = 16 + zlib.MAX_WBITS  # zlib's window bits for the gzip container


def too_large(what: str, limit: int, size: int | None = None) -> ConfigError:
    """The error for a file over the VeleroInstall block's max_download_bytes.

    Args:
        what: the file, e.g. "BackupContents of nightly-20250101".
        limit: the bound in bytes.
        size: its size when the store announced it (Content-Length), else None.
    """
    found = f" ({size} bytes)" if size is not None else ""
    return ConfigError(
        f"{what}{found} is larger than max_download_bytes ({limit} bytes): raise "
        "max_download_bytes on the VeleroInstall block to read it; nothing was cut short"
    )


def refused(code: int, host: str, what: str) -> PipelineError:
    """The error for an object store's HTTP error answer to a pre-signed URL (404 aside).

    401/403: the signature or the keys behind it are refused; 408, 429 and 5xx may pass.
    """
    if code in (401, 403):
        return CredentialsError(
            f"the object store {host} refused the signed URL Velero gave for {what} (HTTP "
            f"{code}): check the storage location's credentials and that the clocks agree"
        )
    error = TransientError if code in (408, 429) or code >= 500 else ConfigError
    return error(f"the object store {host} answered HTTP {code} for {what}")


def tls_failed(host: str, what: str, reason: str, *, verify: bool, has_ca: bool) -> ConfigError:
    """The error for a TLS failure with the object store: a setting to fix, never a retry.

    Args:
        host: the store's host[:port].
        what: the file being read.
        reason: the TLS library's reason (no secrets in it).
        verify: the certificate did not verify (else the handshake itself failed).
        has_ca: the VeleroInstall block has a ca_cert.
    """
    if not verify:
        return ConfigError(
            f"TLS with the object store {host} failed reading {what} ({reason}): check that "
            "the storage location's s3Url/publicUrl scheme is what the store serves"
        )
    fix = (
        "the block's ca_cert does not verify it: give the bundle of the CA that signed"
        if has_ca
        else "set ca_cert on the VeleroInstall block to the PEM bundle of the CA that signed"
    )
    return ConfigError(
        f"TLS verification of the object store {host} failed reading {what} ({reason}): "
        f"{fix} the store's certificate (the storage location's caCert)"
    )


def gunzip(data: bytes, limit: int, what: str) -> bytes:
    """Decompress one gzip file Velero stored, refusing more than `limit` bytes unpacked.

    Raises:
        ConfigError: not gzip, cut short, or larger than `limit` once unpacked.
    """
    unpacker = zlib.decompressobj(_GZIP)
    try:
        out = unpacker.decompress(data, limit + 1)
    except zlib.error as exc:
        raise ConfigError(f"{what} is not a gzip file: {exc}") from None
    if len(out) > limit:
        raise ConfigError(
            f"{what} unpacks to more than max_download_bytes ({limit} bytes): raise "
            "max_download_bytes on the VeleroInstall block to read it"
        )
    if not unpacker.eof:
        raise ConfigError(f"{what} is cut short: the gzip stream does not end")
    return out


def gunzip_json(data: bytes, limit: int, what: str) -> dict[str, Any]:
    """A gzip-compressed JSON object Velero stored (results, resource list), bounded.

    Raises:
        ConfigError: see `gunzip`, or the text is not a JSON object.
    """
    text = gunzip(data, limit, what)
    try:
        found = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{what} is not JSON: {exc}") from None
    if not isinstance(found, dict):
        raise ConfigError(f"{what} is not a JSON object but {type(found).__name__}")
    return found
