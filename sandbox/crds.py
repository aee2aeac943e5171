"""CustomResourceDefinitions on the local clusters: wait until the apiserver serves them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sandbox.procs import wait_until

ESTABLISHED_TIMEOUT = 30.0  # seconds; a CRD on these clusters is Established within a second


def wait_established(
    api: Any, names: Iterable[str], what: str, timeout: float = ESTABLISHED_TIMEOUT
) -> None:
    """Wait until every named CRD has condition Established=True (its API is served).

    Args:
        api: a kubernetes ApiClient of the cluster.
        names: the CRDs' names, e.g. analysistemplates.argoproj.io.
        what: what is awaited, for the error message (e.g. "Velero's CRDs").
        timeout: seconds to wait.

    Raises:
        PlatformError: a CRD is not Established within the timeout.
    """
    from kubernetes import client

    ext = client.ApiextensionsV1Api(api)
    wanted = list(names)

    def established() -> bool:
        for name in wanted:
            # raw JSON: the client's models would deserialize the whole schema (Argo's: 650 kB)
            raw = ext.read_custom_resource_definition(name, _preload_content=False)
            conds = (json.loads(raw.data).get("status") or {}).get("conditions") or []
            if not any(c["type"] == "Established" and c["status"] == "True" for c in conds):
                return False
        return True

    wait_until(established, timeout, f"{what} to be established")
