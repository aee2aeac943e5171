"""Where the pipeline finds its command-line tools: KYB_<TOOL> settings first, then PATH."""

from __future__ import annotations

import shutil
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from core.ci.errors import ToolUnavailable

#: How to get each tool when it is missing; the error names it.
INSTALL = {
    "go": "install Go 1.24+ (https://go.dev/dl) or set KYB_GO",
    "gofmt": "install Go 1.24+ (gofmt ships with it) or set KYB_GOFMT",
    "kubectl": "install kubectl within one minor version of the cluster, or set KYB_KUBECTL",
    "promtool": "install Prometheus' promtool (apt-get install prometheus) or set KYB_PROMTOOL",
    "gosec": "go install github.com/securego/gosec/v2/cmd/gosec@v2.30.0, or set KYB_GOSEC",
    "docker": "install the Docker CLI or set KYB_DOCKER",
}
#: Where the official Go archive installs go and gofmt, searched after PATH.
GO_HOME_BIN = Path("/usr/local/go/bin")


class ToolSettings(BaseSettings):
    """Paths of the tools, each from a KYB_<TOOL> variable (e.g. KYB_GOSEC=/opt/bin/gosec).

    An empty value means "look on PATH"; a local platform or a worker image sets what it built.
    """

    model_config = SettingsConfigDict(env_prefix="KYB_", frozen=True, extra="ignore")

    go: str = ""
    gofmt: str = ""
    kubectl: str = ""
    promtool: str = ""
    gosec: str = ""
    staticcheck: str = ""
    docker: str = ""

    def find(self, name: str, hint: str = "") -> str:
        """The path of tool `name`: its setting, else PATH, else Go's home for Go's own tools.

        Raises:
            ToolUnavailable: the tool is not configured nor installed; the message says how.
        """
        given = getattr(self, name, "") if name in type(self).model_fields else ""
        if given:
            if not Path(given).is_file():
                raise ToolUnavailable(
                    f"KYB_{name.upper()}={given} is not a file: fix the path", tool=name
                )
            return given
        found = shutil.which(name) or shutil.which(name, path=str(GO_HOME_BIN))
        if not found:
            how = hint or INSTALL.get(name, f"install {name} or put it on PATH")
            raise ToolUnavailable(f"{name} is not installed (not on PATH): {how}", tool=name)
        return found


def find_tool(name: str, hint: str = "") -> str:
    """The path of a command-line tool, from the settings read now (see ToolSettings.find)."""
    return ToolSettings().find(name, hint)
