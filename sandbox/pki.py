"""The platform's own certificate authority: one CA under the state folder, and the certs it signs.

Made once with `cryptography` (EC P-256 keys, keys written 0600) in `<state>/ca/`: `ca.crt` is what
a client trusts (a VeleroInstall block's ca_cert, a storage location's caCert), `ca.key` never
leaves that folder. A server certificate is re-issued only when it is missing, names other hosts,
was signed by another CA or is within a month of expiring. A file lock keeps two `sandbox up` runs
sharing the state folder from making two CAs.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sandbox.files import write_file
from sandbox.settings import Settings

CA_DAYS = 3650
SERVER_DAYS = 397  # what public CAs may issue at most; re-issued a month before it ends
RENEW_BEFORE = timedelta(days=30)


@dataclass(frozen=True)
class ServerCert:
    """Paths of one server's certificate and key, and of the CA that signed them."""

    cert: Path
    key: Path
    ca: Path


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kyb-sandbox"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def self_signed(common_name: str, days: int, path_length: int | None = None) -> tuple[bytes, bytes]:
    """A new EC P-256 key and its self-signed CA certificate (PEM each), e.g. a root or a signer.

    The certificate may sign (keyCertSign) and verify signatures (digitalSignature): the platform's
    CA, and the token issuer's signing certificate a registry trusts as its root, both use it.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    subject = _name(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return _key_pem(key), cert.public_bytes(serialization.Encoding.PEM)


class PlatformCA:
    """The CA of one local platform (its state folder), made on first use."""

    def __init__(self, settings: Settings) -> None:
        self.dir = settings.dir("ca")
        self.cert = self.dir / "ca.crt"
        self.key = self.dir / "ca.key"

    def pem(self) -> str:
        """The CA certificate, PEM (made first if missing)."""
        self.ensure()
        return self.cert.read_text()

    def ensure(self) -> Path:
        """Make the CA unless it exists; return its certificate's path."""
        with self._locked():
            if not (self.cert.is_file() and self.key.is_file()):
                self._make_ca()
        return self.cert

    def server_cert(self, name: str, hosts: list[str]) -> ServerCert:
        """A server certificate for `hosts` (DNS names and IP addresses), issued when needed.

        Args:
            name: the folder under the CA's that keeps it, e.g. "s3-tls".
            hosts: the names it must be valid for, e.g. ["localhost", "127.0.0.1"].
        """
        folder = self.dir / name
        folder.mkdir(exist_ok=True)
        out = ServerCert(folder / "server.crt", folder / "server.key", self.cert)
        with self._locked():
            if not (self.cert.is_file() and self.key.is_file()):
                self._make_ca()
            if not self._current(out, hosts):
                self._issue(out, hosts)
        return out

    # ---- internals -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the CA folder's lock (released when the file closes)."""
        with (self.dir / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _make_ca(self) -> None:
        key_pem, cert_pem = self_signed("kyb-sandbox local CA", CA_DAYS, path_length=0)
        write_file(self.key, key_pem)
        write_file(self.cert, cert_pem, 0o644)

    def _current(self, out: ServerCert, hosts: list[str]) -> bool:
        """Whether out's certificate exists, names exactly `hosts`, is ours and not near its end."""
        if not (out.cert.is_file() and out.key.is_file()):
            return False
        cert = x509.load_pem_x509_certificate(out.cert.read_bytes())
        ca = x509.load_pem_x509_certificate(self.cert.read_bytes())
        try:
            names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return False
        have = {str(n.value) for n in names}
        fresh = cert.not_valid_after_utc - datetime.now(UTC) > RENEW_BEFORE
        return have == set(hosts) and cert.issuer == ca.subject and fresh

    def _issue(self, out: ServerCert, hosts: list[str]) -> None:
        ca_key = serialization.load_pem_private_key(self.key.read_bytes(), password=None)
        ca = x509.load_pem_x509_certificate(self.cert.read_bytes())
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise TypeError(f"{self.key} is not the EC key this module writes: delete {self.dir}")
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(hosts[0]))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=SERVER_DAYS))
            .add_extension(x509.SubjectAlternativeName([_general_name(h) for h in hosts]), False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
            .sign(ca_key, hashes.SHA256())
        )
        write_file(out.key, _key_pem(key))
        write_file(out.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)
