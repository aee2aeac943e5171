"""Which failures are retried: transient ones only (table test over real exception types)."""

from __future__ import annotations

import docker.errors
import httpx
import pytest
import requests
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from core.errors import ConfigError, CredentialsError, PipelineError, TransientError
from tasks import is_transient


def _docker_error(status: int) -> docker.errors.APIError:
    resp = requests.Response()
    resp.status_code = status
    return docker.errors.APIError("daemon says no", response=resp)


def _httpx_error(status: int) -> httpx.HTTPStatusError:
    req = httpx.Request("GET", "http://127.0.0.1:9090/api/v1/query")
    return httpx.HTTPStatusError("x", request=req, response=httpx.Response(status, request=req))


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (TransientError("registry 503"), True),
        (ConfigError("bad spec"), False),
        (CredentialsError("401"), False),
        (PipelineError("analysis failed"), False),
        (ApiException(status=0), True),
        (ApiException(status=409), True),
        (ApiException(status=429), True),
        (ApiException(status=503), True),
        (ApiException(status=404), False),
        (ApiException(status=422), False),
        (ApiException(status=403), False),
        (_httpx_error(502), True),
        (_httpx_error(400), False),
        (httpx.ConnectError("refused"), True),
        (httpx.ReadTimeout("slow"), True),
        (urllib3.exceptions.MaxRetryError(None, "/", "refused"), True),
        (urllib3.exceptions.ProtocolError("reset"), True),
        (requests.exceptions.ConnectionError("reset"), True),
        (_docker_error(500), True),
        (_docker_error(404), False),
        (ConnectionRefusedError(), True),
        (TimeoutError(), True),
        (ValueError("bug"), False),
        (KeyError("bug"), False),
    ],
)
def test_is_transient(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient
