"""A registry token service for the local platform: stands in for Harbor's, GHCR's or Docker Hub's.

Those registries answer 401 with `WWW-Authenticate: Bearer realm=...,service=...,scope=...` and
hand out tokens from their own token service (Harbor's /service/token, ghcr.io/token,
auth.docker.io/token). No such server can be had here: cesanta/docker_auth, the usual standalone
one, is refused by the Go module proxy, and neither Debian nor PyPI carries one. So this module
implements distribution's token authentication specification, the protocol those services speak,
for Debian's docker-registry (distribution 2.8) configured with `auth: token`:

- GET /token?service=S&scope=repository:NAME:ACTIONS[&scope=...] with HTTP Basic credentials;
  no or wrong credentials get 401 (like a private Harbor project: no anonymous tokens).
- The answer is JSON {"token", "access_token", "expires_in", "issued_at"}; the token is a JWT
  signed ES256 whose header carries the signing certificate in `x5c`. The registry trusts that
  certificate through its `rootcertbundle`, and checks `iss`, `aud` (= service), `exp`, `nbf`
  and the granted `access` against the request (distribution's registry/auth/token).
- Each user's grants are (repository glob, actions); a scope gets the requested actions the
  user holds, none otherwise (the registry then answers 401 insufficient_scope).

Run: python -m sandbox.token_issuer CONFIG.json HOST:PORT  (sandbox/components/token_registry.py
writes the config: issuer, service, key and certificate paths, users with scrypt hashes).
Passwords and tokens are never logged.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import hmac
import json
import secrets
import sys
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization

SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str, salt: bytes) -> str:
    """The scrypt hash (hex) the config stores instead of the password."""
    return hashlib.scrypt(password.encode(), salt=salt, **SCRYPT).hex()


def granted(grants: list[list[Any]], scope: str) -> dict[str, Any] | None:
    """The access entry a scope gets from a user's grants, or None for a scope of another type.

    Args:
        grants: [repository glob, [actions]] pairs, e.g. [["shared/*", ["pull"]]].
        scope: A requested scope, `repository:NAME:ACTIONS` (NAME may hold ':').

    Returns:
        {"type", "name", "actions"} with the requested actions the grants allow (maybe none).
    """
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    if kind != "repository" or not name:
        return None
    allowed = {a for pattern, acts in grants if fnmatch.fnmatchcase(name, pattern) for a in acts}
    wanted = [a for a in actions.split(",") if a]
    return {"type": kind, "name": name, "actions": [a for a in wanted if a in allowed]}


class Issuer:
    """Checks credentials and signs tokens, from the config file's settings."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.issuer, self.service = config["issuer"], config["service"]
        self.expires_in = int(config.get("expires_in", 300))
        self.users: dict[str, dict[str, Any]] = config["users"]
        self.key = serialization.load_pem_private_key(Path(config["key"]).read_bytes(), None)
        cert = x509.load_pem_x509_certificate(Path(config["cert"]).read_bytes())
        self.x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]

    def user(self, authorization: str) -> str | None:
        """The user whose Basic credentials these are, or None."""
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            name, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        entry = self.users.get(name)
        if entry is None:
            hash_password(password, b"no-such-user-salt")  # same time as a known user
            return None
        digest = hash_password(password, bytes.fromhex(entry["salt"]))
        return name if hmac.compare_digest(digest, entry["hash"]) else None

    def token(self, user: str, scopes: list[str]) -> dict[str, Any]:
        """The JSON answer: a signed token granting `user` what it holds of `scopes`."""
        now = int(time.time())
        access = [a for s in scopes if (a := granted(self.users[user]["grants"], s))]
        claims = {
            "iss": self.issuer,
            "sub": user,
            "aud": self.service,  # distribution 2.8 reads aud as one string
            "exp": now + self.expires_in,
            "nbf": now - 1,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        signed = jwt.encode(claims, self.key, algorithm="ES256", headers={"x5c": self.x5c})
        issued_at = datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z")
        print(f"token for {user}: {access}", flush=True)
        return {
            "token": signed,
            "access_token": signed,
            "expires_in": self.expires_in,
            "issued_at": issued_at,
        }


def handler(issuer: Issuer) -> type[BaseHTTPRequestHandler]:
    """The HTTP handler serving GET /token for `issuer`."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: dict[str, Any], challenge: bool = False) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            if challenge:
                self.send_header("WWW-Authenticate", f'Basic realm="{issuer.issuer}"')
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path != "/token":
                self._answer(404, {"errors": [{"code": "NOT_FOUND", "message": url.path}]})
                return
            query = parse_qs(url.query)
            service = query.get("service", [issuer.service])[0]
            if service != issuer.service:
                message = f"unknown service {service[:100]!r}: this issuer serves {issuer.service}"
                self._answer(400, {"errors": [{"code": "DENIED", "message": message}]})
                return
            user = issuer.user(self.headers.get("Authorization", ""))
            if user is None:
                error = {"code": "UNAUTHORIZED", "message": "authentication required"}
                self._answer(401, {"errors": [error]}, challenge=True)
                return
            scopes = [s for value in query.get("scope", []) for s in value.split()]
            self._answer(200, issuer.token(user, scopes))

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            # the path only: the query (service, scopes) is no secret, but keep the log short
            self.log_message("%s %s %s", self.command, urlsplit(self.path).path, code)

    return Handler


def main(argv: list[str]) -> None:
    """Serve the token endpoint: argv = [CONFIG.json, HOST:PORT]."""
    config, listen = argv
    host, _, port = listen.rpartition(":")
    issuer = Issuer(json.loads(Path(config).read_text()))
    server = ThreadingHTTPServer((host, int(port)), handler(issuer))
    server.daemon_threads = True
    print(f"token issuer {issuer.issuer} for {issuer.service} on {listen}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
