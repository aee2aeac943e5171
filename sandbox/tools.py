"""Tools the platform builds for the pipeline (gosec), and the KYB_<TOOL> settings for them."""

from __future__ import annotations

import os

from sandbox.install import go_build
from sandbox.settings import Settings

GOSEC_MODULE = "github.com/securego/gosec/v2/cmd/gosec"
GOSEC_VERSION = "v2.30.0"  # builds with Go 1.26 from the module proxy


def gosec_path(version: str = GOSEC_VERSION) -> str:
    """Where the platform keeps gosec `version` (built or not)."""
    return str(Settings().cache / f"gosec-{version}" / "gosec")


def ensure_gosec(version: str = GOSEC_VERSION) -> str:
    """gosec, built once from its Go module into the cache (~/.cache/kyb-pipeline/gosec-<version>).

    Raises:
        PlatformError: Go is missing or the module cannot be fetched or built.
    """
    binary = gosec_path(version)
    if not os.path.exists(binary):
        go_build(
            "gosec", None, [f"{GOSEC_MODULE}@{version}"], Settings().cache / f"gosec-{version}"
        )
    return binary


def tool_env() -> dict[str, str]:
    """KYB_<TOOL> settings for the tools the platform built (the pipeline's ToolSettings)."""
    env = {}
    if os.path.exists(gosec_path()):
        env["KYB_GOSEC"] = gosec_path()
    kubectl = Settings().k8s_bin / "kubectl"
    if kubectl.exists():
        env["KYB_KUBECTL"] = str(kubectl)
    return env
