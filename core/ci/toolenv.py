"""What a tool that runs the repository's code may see: what builds need, and no credentials.

`go test`, linters and the repository's own build script run code from the repository under test;
with the worker's whole environment, that code could read the Prefect API key, registry and
cloud credentials. Tools get an allowlist instead: anything not named here is left out, so a new
credential variable is kept away by default.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from core.errors import ConfigError

#: Variables a build or a test needs: the locale, paths, and Go's own settings.
PASSED = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TERM",
        "TMPDIR",
        "SOURCE_DATE_EPOCH",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "CA_BUNDLE",
        "GOPATH",
        "GOROOT",
        "GOMODCACHE",
        "GOCACHE",
        "GOENV",
        "GOFLAGS",
        "GOPROXY",
        "GONOPROXY",
        "GOPRIVATE",
        "GOSUMDB",
        "GONOSUMDB",
        "GOINSECURE",
        "GOTOOLCHAIN",
        "GOTELEMETRY",
        "GOOS",
        "GOARCH",
        "GOAMD64",
        "CGO_ENABLED",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
    }
)
PASSED_PREFIXES = ("LC_",)
#: A version compiled into a binary: letters, digits and . _ + - (no space, quote or flag).
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z._+-]{0,127}")


def tool_environment(
    environ: Mapping[str, str], extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment for a tool: the allowlisted part of `environ`, plus `extra` (data it needs).

    Args:
        environ: The worker's environment (os.environ).
        extra: Variables the caller passes on purpose, e.g. {"VERSION": "1.4.2"}.

    Returns:
        A new mapping; `environ` is not changed.
    """
    kept = {k: v for k, v in environ.items() if k in PASSED or k.startswith(PASSED_PREFIXES)}
    return {**kept, **(extra or {})}


def check_version(version: str) -> str:
    """A version to compile into a binary, refused unless it is one plain word.

    Raises:
        ConfigError: it holds spaces, quotes or other characters a build could read as flags.
    """
    if not _VERSION.fullmatch(version):
        raise ConfigError(
            f"version {version[:80]!r} is not a plain version: use up to 128 letters, digits, "
            "'.', '_', '+' or '-', starting with a letter or digit"
        )
    return version
