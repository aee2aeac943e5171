"""ContainerRegistry block: an OCI/Docker registry's address and (secret) credentials."""

from __future__ import annotations

import logging
import re

import docker
from prefect.blocks.core import Block
from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from blocks._http import probe
from blocks.registry_auth import registry_auth
from core.errors import ConfigError, CredentialsError, TransientError

logger = logging.getLogger(__name__)

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])"  # hostname, IPv4 or [IPv6]
_ADDRESS = re.compile(rf"{_HOST}(?::(?P<port>[0-9]{{1,5}}))?")
# OCI distribution spec: repository name, tag and digest grammars.
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[A-Za-z0-9=_-]{32,}")


class ContainerRegistry(Block):
    """A container registry (Docker Registry v2 / OCI distribution API) and its credentials."""

    model_config = ConfigDict(hide_input_in_errors=True)  # never echo a password in errors

    _block_type_name = "KYB Container Registry"
    _block_type_slug = "kyb-container-registry"
    _logo_url = "https://cdn.sanity.io/images/3ugk85nk/production/14a315b79990200db7341e42553e23650b34bb96-250x250.png"
    _documentation_url = "https://distribution.github.io/distribution/spec/api/"
    _description = "A container registry the pipeline pushes images to; the password is a secret."
    _code_example = """
    ```python
    import docker
    from blocks import ContainerRegistry

    registry = ContainerRegistry.load("BLOCK_NAME")
    registry.check()
    registry.login(docker.from_env())
    image = registry.image("kyb/api", "1.4.2")  # 127.0.0.1:5000/kyb/api:1.4.2
    ```
    """

    address: str = Field(description="The registry as host[:port], e.g. 127.0.0.1:5000.")
    username: str | None = Field(default=None, description="The user to log in as.")
    password: SecretStr | None = Field(default=None, description="The password of that user.")
    insecure: bool = Field(default=False, description="Talk plain HTTP instead of HTTPS.")
    verify_tls: bool = Field(default=True, description="Verify the registry's TLS certificate.")

    @field_validator("address")
    @classmethod
    def _valid_address(cls, value: str) -> str:
        if "://" in value:
            raise ValueError(
                f"address {value!r} must not have a scheme: give host[:port] only "
                "(set insecure=True for a plain-HTTP registry)"
            )
        match = _ADDRESS.fullmatch(value)
        if not match or not 0 < int(match["port"] or 443) < 65536:
            raise ValueError(
                f"address {value!r} is not host[:port]: no user, path or spaces, "
                "port 1-65535, e.g. 127.0.0.1:5000 or registry.example.com"
            )
        return value

    @model_validator(mode="after")
    def _both_or_neither(self) -> ContainerRegistry:
        if (self.username is None) != (self.password is None):
            raise ValueError("username / password: set both of them, or neither")
        return self

    @property
    def url(self) -> str:
        """The registry's base URL, http:// when insecure, else https://."""
        return f"{'http' if self.insecure else 'https'}://{self.address}"

    def _label(self) -> str:
        slug, name = self.get_block_type_slug(), self._block_document_name
        return f"'{slug}/{name}'" if name else f"{slug} (unsaved)"

    def _redact(self, text: str) -> str:
        if self.password is not None and self.password.get_secret_value():
            text = text.replace(self.password.get_secret_value(), "***")
        return text[:300]

    def image(self, repository: str, tag_or_digest: str) -> str:
        """Build a full image reference in this registry.

        Args:
            repository: The repository path, e.g. "kyb/api" (lowercase, OCI rules).
            tag_or_digest: A tag ("1.4.2") or a digest ("sha256:<64 hex>").

        Returns:
            E.g. "127.0.0.1:5000/kyb/api:1.4.2" or "127.0.0.1:5000/kyb/api@sha256:...".

        Raises:
            ConfigError: The repository, tag or digest is malformed.
        """
        if repository.startswith(f"{self.address}/"):
            raise ConfigError(f"repository {repository!r}: leave out the registry address")
        if not _REPOSITORY.fullmatch(repository):
            raise ConfigError(
                f"repository {repository!r} is invalid: use lowercase path components of "
                "letters and digits separated by '.', '_', '__' or '-', joined by '/'"
            )
        if ":" in tag_or_digest:
            algorithm, _, encoded = tag_or_digest.partition(":")
            sha256_ok = algorithm != "sha256" or re.fullmatch(r"[0-9a-f]{64}", encoded)
            if not _DIGEST.fullmatch(tag_or_digest) or not sha256_ok:
                raise ConfigError(
                    f"digest {tag_or_digest!r} is invalid: use 'sha256:' and 64 lowercase hex"
                )
            reference = f"{self.address}/{repository}@{tag_or_digest}"
        elif _TAG.fullmatch(tag_or_digest):
            reference = f"{self.address}/{repository}:{tag_or_digest}"
        else:
            raise ConfigError(
                f"tag {tag_or_digest!r} is invalid: use up to 128 letters, digits, '_', '.' "
                "or '-', not starting with '.' or '-'"
            )
        if len(reference.split("@")[0].rsplit(":", 1)[0]) > 255:
            raise ConfigError(f"image name {reference!r} is longer than 255 characters")
        return reference

    def check(self, timeout: float = 10.0) -> None:
        """GET /v2/ with the block's credentials (Basic or a token) to prove they are accepted.

        Args:
            timeout: Seconds to wait for the registry.

        Raises:
            TransientError: The registry cannot be reached or answered 429/5xx.
            CredentialsError: The registry refused the credentials (401/403).
            ConfigError: TLS failed, or the address does not serve the registry API.
        """
        url, where = f"{self.url}/v2/", f"block {self._label()}"
        logger.debug("checking registry %s as user %r", self.address, self.username)
        status = probe(  # a 401 is answered (Basic, or a token: RegistryAuth) or raised there
            url,
            verify=self.verify_tls,
            timeout=timeout,
            what=f"registry {self.url}",
            tls_fix="set insecure=True if it serves plain HTTP, or verify_tls=False / trust its "
            f"CA, in {where}",
            auth=registry_auth(self, timeout=timeout),
        ).status_code
        if status < 300:
            return
        if status in (401, 403) and self.username is None:
            raise CredentialsError(
                f"registry {self.address} requires credentials (HTTP {status}): "
                f"set username and password in {where}"
            )
        if status in (401, 403):
            raise CredentialsError(
                f"registry {self.address} refused the credentials of user {self.username!r} "
                f"(HTTP {status}): check the username and password in {where}"
            )
        if status == 429 or status >= 500:
            raise TransientError(f"registry {self.address} answered HTTP {status} on /v2/")
        raise ConfigError(
            f"{url} answered HTTP {status}: is {self.address} a registry (Docker Registry v2 "
            f"API)? check address and insecure in {where}"
        )

    def login(self, client: docker.DockerClient) -> None:
        """Log the Docker daemon behind `client` in to this registry; no-op without credentials.

        Args:
            client: A docker-py client.

        Raises:
            CredentialsError: The registry refused the credentials.
            TransientError: The daemon or the registry cannot be reached, or failed.
            ConfigError: The daemon must be told to trust the (plain-HTTP) registry.
        """
        where = f"block {self._label()}"
        if self.username is None or self.password is None:
            logger.debug("registry %s: no credentials, nothing to log in with", self.address)
            return
        try:
            client.login(
                username=self.username,
                password=self.password.get_secret_value(),
                registry=self.address,
                reauth=True,
            )
        except docker.errors.APIError as exc:
            text = self._redact(str(exc.explanation or ""))
            if exc.status_code == 401 or "unauthorized" in text.lower():
                raise CredentialsError(
                    f"registry {self.address} refused the credentials of user "
                    f"{self.username!r}: check the username and password in {where}"
                ) from None
            if "http response to https client" in text.lower():
                raise ConfigError(
                    f"the Docker daemon talks HTTPS to {self.address}, which serves HTTP: add it "
                    f"to the daemon's insecure-registries ({text})"
                ) from None
            raise TransientError(
                f"docker login to {self.address} failed (daemon HTTP {exc.status_code}): {text}"
            ) from None
        except (docker.errors.DockerException, OSError) as exc:  # requests errors are OSErrors
            raise TransientError(
                f"cannot reach the Docker daemon to log in to {self.address}: "
                f"{type(exc).__name__} (is dockerd running?)"
            ) from None
