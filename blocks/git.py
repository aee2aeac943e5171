"""GitRepository block: where the application's source is fetched from, and its (secret) token."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from prefect.blocks.core import Block
from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

_SCP = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+$")  # git@github.com:acme/kyb.git


class GitRepository(Block):
    """A git repository the delivery builds from, at the exact commit it was asked for."""

    model_config = ConfigDict(hide_input_in_errors=True)  # never echo a token in errors

    _block_type_name = "KYB Git Repository"
    _block_type_slug = "kyb-git-repository"
    _logo_url = "https://cdn.sanity.io/images/3ugk85nk/production/14a315b79990200db7341e42553e23650b34bb96-250x250.png"
    _documentation_url = "https://git-scm.com/docs/git-fetch"
    _description = "A git repository the pipeline fetches at one commit; its token is a secret."
    _code_example = """
    ```python
    from blocks import GitRepository

    GitRepository(
        url="https://github.com/acme/kyb-platform.git", username="x-access-token", token="..."
    ).save("kyb-platform")
    ```
    """

    url: str = Field(
        description="The clone URL: https://host/owner/name.git, ssh://, git@host:path or file://."
    )
    username: str | None = Field(
        default=None, description="The user for HTTPS (GitHub: x-access-token)."
    )
    token: SecretStr | None = Field(default=None, description="A token or password for HTTPS.")

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if _SCP.match(value):
            return value
        if parts.scheme not in ("https", "http", "ssh", "git", "file"):
            raise ValueError(
                f"url {value!r} is not a clone URL: use https://host/owner/name.git, "
                "ssh://, git@host:owner/name.git or file:///path"
            )
        if parts.username or parts.password:
            raise ValueError("url must not carry a user or token: set username and token")
        if parts.scheme != "file" and not parts.hostname:
            raise ValueError(f"url {value!r} has no host")
        return value

    @model_validator(mode="after")
    def _token_for_https(self) -> GitRepository:
        if self.token is not None and urlsplit(self.url).scheme not in ("https", "http"):
            raise ValueError("token is sent over HTTPS only: use an https:// url, or no token")
        return self
