"""The pipeline's tasks, one module per boundary; here the retry policy every I/O task shares."""

from __future__ import annotations

from typing import Any

import docker.errors
import httpx
import requests.exceptions
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException
from prefect.tasks import exponential_backoff

from core.errors import PipelineError, TransientError

TRANSIENT_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


def is_transient(exc: BaseException) -> bool:
    """True for faults that may pass: connection errors, timeouts, conflicts, 429 and 5xx."""
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, PipelineError):
        return False  # ConfigError, CredentialsError, failed analysis...: retrying cannot help
    if isinstance(exc, ApiException):
        return exc.status == 0 or exc.status in TRANSIENT_STATUS  # 0: no HTTP answer at all
    if isinstance(exc, docker.errors.APIError):
        return exc.status_code in TRANSIENT_STATUS
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code in TRANSIENT_STATUS
    return isinstance(
        exc,
        httpx.TransportError
        | urllib3.exceptions.HTTPError
        | requests.exceptions.ConnectionError
        | requests.exceptions.Timeout
        | ConnectionError
        | TimeoutError,
    )


def retry_on_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry_condition_fn: retry only when the task failed with a transient fault."""
    try:
        state.result()
    except BaseException as exc:  # classifying the failure is the point
        return is_transient(exc)
    return False


# Shared by every task that talks to a service: 6 retries, 1-2-4-8-16-32 s apart (jittered), so
# an outage of up to about a minute (an apiserver restart, a registry redeploy) is ridden out.
RETRIES: dict[str, Any] = {
    "retries": 6,
    "retry_delay_seconds": exponential_backoff(backoff_factor=1),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_on_transient,
}
