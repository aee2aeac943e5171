"""Reading what Velero stored: the block's CA, size bound and timeout, and the errors users see.

The far end is a small HTTP server on 127.0.0.1 (the shape of an object store's answers, chunked
or not); the real store over TLS by host name is in tests/integration/test_velero_downloads.py.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import http.server
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from pydantic import ValidationError

from blocks import KubernetesCluster, VeleroInstall
from core.errors import ConfigError, CredentialsError, TransientError
from core.recovery.stored import gunzip, gunzip_json, refused, tls_failed, too_large
from sandbox.components.s3tls import S3TlsStore
from sandbox.pki import PlatformCA
from sandbox.settings import Settings
from tests.unit.test_blocks import make_kubeconfig

SIGNED = "?X-Amz-Signature=0123456789abcdef-not-for-logs"


def install(**kwargs: object) -> VeleroInstall:
    return VeleroInstall(cluster=KubernetesCluster(kubeconfig=make_kubeconfig()), **kwargs)


@pytest.fixture
def ca(tmp_path: Path) -> PlatformCA:
    return PlatformCA(Settings(home=tmp_path, cache=tmp_path / "cache"))


# ---- the block's fields --------------------------------------------------------------------------
def test_defaults_bound_size_and_time_and_trust_no_extra_ca() -> None:
    block = install()
    assert block.ca_cert is None
    assert block.max_download_bytes == 256 * 1024 * 1024
    assert block.download_timeout_seconds == 300


def test_a_pem_ca_bundle_is_accepted_and_blank_means_none(ca: PlatformCA) -> None:
    assert install(ca_cert=f"\n{ca.pem()}\n\n").ca_cert == ca.pem()
    assert install(ca_cert="  ").ca_cert is None


@pytest.mark.parametrize(
    ("value", "fix"),
    [
        ("not a certificate", "paste the -----BEGIN CERTIFICATE----- blocks"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----", "is not a PEM CA"),
        ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----", "holds a private key"),
    ],
)
def test_a_bad_ca_cert_says_what_to_give(value: str, fix: str) -> None:
    with pytest.raises(ValidationError) as info:
        install(ca_cert=value)
    assert fix in str(info.value)
    assert "AAAA" not in str(info.value)  # the input is never echoed


@pytest.mark.parametrize("field", ["max_download_bytes", "download_timeout_seconds"])
def test_bounds_must_be_positive(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        install(**{field: 0})


# ---- pure messages ------------------------------------------------------------------------------
def test_too_large_names_the_object_the_limit_and_the_fix() -> None:
    err = too_large("BackupContents of nightly-1", 1024, 5000)
    assert isinstance(err, ConfigError)
    text = str(err)
    assert "BackupContents of nightly-1 (5000 bytes)" in text and "(1024 bytes)" in text
    assert "raise max_download_bytes on the VeleroInstall block" in text


def test_gunzip_is_bounded_and_never_short() -> None:
    data = gzip.compress(b"x" * 1000)
    assert gunzip(data, 1000, "f") == b"x" * 1000
    with pytest.raises(ConfigError, match=r"f unpacks to more than max_download_bytes \(999"):
        gunzip(data, 999, "f")
    with pytest.raises(ConfigError, match="cut short"):
        gunzip(data[:-12], 10_000, "f")
    with pytest.raises(ConfigError, match="is not a gzip file"):
        gunzip(b"plain text", 10_000, "f")


def test_gunzip_json_wants_an_object() -> None:
    assert gunzip_json(gzip.compress(b'{"errors": {}}'), 100, "r") == {"errors": {}}
    with pytest.raises(ConfigError, match="r is not a JSON object but list"):
        gunzip_json(gzip.compress(b"[]"), 100, "r")
    with pytest.raises(ConfigError, match="r is not JSON"):
        gunzip_json(gzip.compress(b"{"), 100, "r")


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (401, CredentialsError),
        (403, CredentialsError),
        (400, ConfigError),
        (408, TransientError),
        (429, TransientError),
        (500, TransientError),
        (503, TransientError),
    ],
)
def test_http_answers_map_onto_the_error_tree(code: int, kind: type) -> None:
    err = refused(code, "s3.example:443", "BackupLog of b")
    assert type(err) is kind and f"HTTP {code}" in str(err) and "BackupLog of b" in str(err)


def test_tls_failures_say_whether_to_set_or_fix_the_ca() -> None:
    unset = str(tls_failed("h:1", "w", "unable to get local issuer", verify=True, has_ca=False))
    assert "set ca_cert on the VeleroInstall block" in unset and "caCert" in unset
    wrong = str(tls_failed("h:1", "w", "unable to get local issuer", verify=True, has_ca=True))
    assert "ca_cert does not verify it" in wrong
    handshake = str(tls_failed("h:1", "w", "WRONG_VERSION_NUMBER", verify=False, has_ca=False))
    assert "scheme" in handshake


# ---- the platform CA and the TLS store's storage location ---------------------------------------
def test_platform_ca_issues_a_server_cert_for_the_names_once(ca: PlatformCA) -> None:
    first = ca.server_cert("s3-tls", ["localhost", "127.0.0.1"])
    assert oct(first.key.stat().st_mode & 0o777) == "0o600"
    assert oct(ca.key.stat().st_mode & 0o777) == "0o600"
    cert = x509.load_pem_x509_certificate(first.cert.read_bytes())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.cert.read_bytes()))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n.value) for n in names] == ["localhost", "127.0.0.1"]
    before = first.cert.read_bytes()
    assert ca.server_cert("s3-tls", ["localhost", "127.0.0.1"]).cert.read_bytes() == before
    again = ca.server_cert("s3-tls", ["localhost", "vm.example", "127.0.0.1"])
    assert again.cert.read_bytes() != before  # other names: re-issued by the same CA
    assert ca.pem() == ca.cert.read_text()


def test_tls_storage_location_trusts_the_platform_ca(tmp_path: Path) -> None:
    store = S3TlsStore(Settings(home=tmp_path, cache=tmp_path / "cache"))
    bsl = store.storage_location("tls-x", prefix="p", public_url="https://vm:39443")
    spec = bsl["spec"]
    assert bsl["metadata"]["name"] == "tls-x" and spec["default"] is False
    assert base64.b64decode(spec["objectStorage"]["caCert"]).decode() == store.ca_pem()
    assert spec["objectStorage"] == {**spec["objectStorage"], "bucket": "kyb-tls-backups"}
    assert spec["objectStorage"]["prefix"] == "p"
    assert spec["config"]["s3Url"] == "https://localhost:39443"
    assert spec["config"]["publicUrl"] == "https://vm:39443"


# ---- read_stored against a far end on loopback --------------------------------------------------
Answer = Callable[[http.server.BaseHTTPRequestHandler], None]


@contextlib.contextmanager
def far_end(answer: Answer, tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """Serve `answer` for every GET on 127.0.0.1 (over TLS if given); yield the base URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            answer(self)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def sized(status: int, body: bytes) -> Answer:
    def answer(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return answer


def chunked(body: bytes, pieces: int = 8, pause: float = 0.0) -> Answer:
    """No Content-Length (as a proxy in front of a store may answer): the bound must still hold."""

    def answer(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        step = max(1, len(body) // pieces)
        for i in range(0, len(body), step):
            piece = body[i : i + step]
            h.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            h.wfile.flush()
            time.sleep(pause)
        h.wfile.write(b"0\r\n\r\n")

    return answer


def test_reads_the_whole_file_with_or_without_a_length() -> None:
    body = bytes(range(256)) * 40
    for answer in (sized(200, body), chunked(body)):
        with far_end(answer) as base:
            assert install().read_stored(f"{base}/b/k{SIGNED}", "f") == body


def test_a_missing_file_is_none_and_errors_never_show_the_signature() -> None:
    with far_end(sized(404, b"<Error>NoSuchKey</Error>")) as base:
        assert install().read_stored(f"{base}/b/k{SIGNED}", "f") is None
    refusal = sized(403, b"<Error>SignatureDoesNotMatch</Error>")
    with far_end(refusal) as base, pytest.raises(CredentialsError) as info:
        install().read_stored(f"{base}/b/k{SIGNED}", "BackupLog of b")
    assert "HTTP 403" in str(info.value) and "Signature" not in str(info.value)


@pytest.mark.parametrize("answer", ["sized", "chunked"])
def test_a_file_over_the_bound_is_refused_naming_it_and_the_limit(answer: str) -> None:
    body = b"z" * 5000
    serve = sized(200, body) if answer == "sized" else chunked(body)
    with far_end(serve) as base, pytest.raises(ConfigError) as info:
        install(max_download_bytes=4096).read_stored(f"{base}/k{SIGNED}", "BackupContents of b1")
    text = str(info.value)
    assert "BackupContents of b1" in text and "max_download_bytes (4096 bytes)" in text


def test_a_slow_drip_ends_at_the_timeout() -> None:
    block = install(download_timeout_seconds=1)
    with far_end(chunked(b"y" * 40, pieces=40, pause=0.1)) as base:
        started = time.monotonic()
        with pytest.raises(TransientError, match="took over 1s"):
            block.read_stored(f"{base}/k", "BackupLog of b")
    assert time.monotonic() - started < 5


def test_tls_with_the_ca_from_the_block_and_without_it(ca: PlatformCA, tmp_path: Path) -> None:
    cert = ca.server_cert("unit", ["127.0.0.1"])
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert.cert, cert.key)
    with far_end(sized(200, b"ok"), server_tls) as base:
        assert install(ca_cert=ca.pem()).read_stored(f"{base}/k", "f") == b"ok"
        started = time.monotonic()
        with pytest.raises(ConfigError) as info:
            install().read_stored(f"{base}/k{SIGNED}", "BackupContents of b2")
        assert time.monotonic() - started < 5  # a setting to fix: no retries, no waiting
    text = str(info.value)
    assert "TLS verification of the object store 127.0.0.1:" in text
    assert "set ca_cert on the VeleroInstall block" in text and "BackupContents of b2" in text
    assert "Signature" not in text


def test_results_json_is_what_velero_stored() -> None:
    found = {"errors": {"namespaces": {"a": ["boom"]}}, "warnings": {}}
    data = gzip.compress(json.dumps(found).encode())
    assert gunzip_json(data, 1 << 20, "BackupResults of b") == found
