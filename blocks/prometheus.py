"""PrometheusServer block: the Prometheus HTTP API used for analysis, with optional auth."""

from __future__ import annotations

import base64
import logging
from urllib.parse import urlsplit

import httpx
from prefect.blocks.core import Block
from prometheus_api_client import PrometheusConnect
from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator
from urllib3.util.retry import Retry

from blocks._http import probe
from core.errors import ConfigError, CredentialsError, TransientError

logger = logging.getLogger(__name__)

# A refused connection or a 5xx is retried briefly; a query that timed out is not (the analysis
# measures again at its next interval): the library's default retried it 3 times, so a server
# that never answered held one measurement for four timeouts.
_RETRY = Retry(total=2, read=False, backoff_factor=0.5, status_forcelist=(429, 502, 503, 504))


class PrometheusServer(Block):
    """A Prometheus server's HTTP API, with a bearer token or basic auth if it needs one."""

    model_config = ConfigDict(hide_input_in_errors=True)  # never echo a token in errors

    _block_type_name = "KYB Prometheus"
    _block_type_slug = "kyb-prometheus"
    _logo_url = "https://avatars.githubusercontent.com/u/3380462?s=200&v=4"
    _documentation_url = "https://prometheus.io/docs/prometheus/latest/querying/api/"
    _description = "The Prometheus server whose metrics decide canary and health analysis."
    _code_example = """
    ```python
    from blocks import PrometheusServer

    prometheus = PrometheusServer.load("BLOCK_NAME")
    print(prometheus.check())  # the server's version
    result = prometheus.connect().custom_query('up{job="kyb-api"}')
    ```
    """

    url: str = Field(description="The base URL, e.g. http://127.0.0.1:9090.")
    bearer_token: SecretStr | None = Field(default=None, description="A bearer token, if needed.")
    username: str | None = Field(default=None, description="The basic-auth user, if needed.")
    password: SecretStr | None = Field(default=None, description="The basic-auth password.")
    verify_tls: bool = Field(default=True, description="Verify the server's TLS certificate.")
    scrape_interval_seconds: float = Field(
        default=15.0,
        gt=0,
        description="The scrape interval of the metrics the analyses read: "
        "rate windows span at least four scrapes.",
    )

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        try:
            parts = urlsplit(value)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
            ok = ok and (parts.port is None or parts.port > 0)
        except ValueError:  # bad port or IPv6 brackets
            ok = False
        if not ok:
            raise ValueError(
                f"url {value!r} must be http(s)://host[:port][/path], e.g. http://127.0.0.1:9090"
            )
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError(
                "url must not carry a user, password, query or fragment: "
                "put credentials in username/password or bearer_token"
            )
        return value.rstrip("/")

    @model_validator(mode="after")
    def _one_auth(self) -> PrometheusServer:
        if (self.username is None) != (self.password is None):
            raise ValueError("username / password: set both of them, or neither")
        if self.bearer_token is not None and self.username is not None:
            raise ValueError(
                "bearer_token / username+password: use one kind of auth, not both; "
                "unset bearer_token or username and password"
            )
        return self

    def _label(self) -> str:
        slug, name = self.get_block_type_slug(), self._block_document_name
        return f"'{slug}/{name}'" if name else f"{slug} (unsaved)"

    def headers(self) -> dict[str, str]:
        """Build the Authorization header (internal use: the result holds the secret; never log it).

        Returns:
            {"Authorization": ...} for bearer or basic auth, else {}.
        """
        if self.bearer_token is not None:
            return {"Authorization": f"Bearer {self.bearer_token.get_secret_value()}"}
        if self.username is not None and self.password is not None:
            pair = f"{self.username}:{self.password.get_secret_value()}".encode()
            return {"Authorization": f"Basic {base64.b64encode(pair).decode()}"}
        return {}

    def connect(self, timeout: float = 30.0) -> PrometheusConnect:
        """Return a prometheus-api-client connection with this block's auth and TLS setting.

        Args:
            timeout: Seconds each query (instant or range) may wait for the server's answer.

        Returns:
            A PrometheusConnect (close it, or use it as a context manager, when done).
        """
        return PrometheusConnect(
            url=self.url,
            headers=self.headers(),
            disable_ssl=not self.verify_tls,
            timeout=timeout,
            retry=_RETRY,
        )

    def check(self, timeout: float = 10.0) -> str:
        """GET /api/v1/status/buildinfo to prove the server answers and accepts the auth.

        Args:
            timeout: Seconds to wait for the server.

        Returns:
            The Prometheus version, e.g. "2.42.0".

        Raises:
            TransientError: The server cannot be reached or answered 429/5xx.
            CredentialsError: The server refused the credentials (401/403).
            ConfigError: TLS failed, or the URL does not serve the Prometheus API.
        """
        url, where = f"{self.url}/api/v1/status/buildinfo", f"block {self._label()}"
        logger.debug("checking Prometheus at %s", self.url)
        response = probe(
            url,
            verify=self.verify_tls,
            timeout=timeout,
            what=f"Prometheus {self.url}",
            tls_fix=f"check the URL's scheme, or set verify_tls=False / trust its CA, in {where}",
            headers=self.headers(),
        )
        status = response.status_code
        if status in (401, 403):
            kind = "bearer token" if self.bearer_token else "basic auth" if self.username else ""
            fix = f"check the {kind}" if kind else "set bearer_token or username and password"
            raise CredentialsError(
                f"Prometheus {self.url} refused the request (HTTP {status}): {fix} in {where}"
            )
        if status == 429 or status >= 500:
            raise TransientError(f"Prometheus {self.url} answered HTTP {status} on {url}")
        try:
            response.raise_for_status()
            return str(response.json()["data"]["version"])
        except (httpx.HTTPStatusError, ValueError, KeyError, TypeError):
            raise ConfigError(
                f"{url} answered HTTP {status} without a Prometheus build info: check the url "
                f"(scheme, host, port, path prefix) in {where}"
            ) from None
