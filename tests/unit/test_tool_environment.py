"""What tools running the repository's code may see, and the delivery's guards on its inputs."""

from __future__ import annotations

import pytest

from core.ci.toolenv import check_version, tool_environment
from core.delivery.approval import check_auto_approve
from core.errors import ConfigError

WORKER = {
    "PATH": "/usr/bin",
    "HOME": "/root",
    "LC_ALL": "C.UTF-8",
    "GOPROXY": "https://proxy.golang.org",
    "GOMODCACHE": "/cache/mod",
    "PREFECT_API_KEY": "pnu_secret",
    "PREFECT_API_URL": "http://prefect/api",
    "KYB_GOSEC": "/opt/gosec",
    "AWS_SECRET_ACCESS_KEY": "secret",
    "GITHUB_TOKEN": "ghp_secret",
    "REGISTRY_PASSWORD": "secret",
}


def test_tools_get_the_allowlist_and_what_the_caller_passes_only() -> None:
    env = tool_environment(WORKER, {"VERSION": "1.4.2"})
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "LC_ALL": "C.UTF-8",
        "GOPROXY": "https://proxy.golang.org",
        "GOMODCACHE": "/cache/mod",
        "VERSION": "1.4.2",
    }
    assert "PREFECT_API_KEY" in WORKER  # the worker's own environment is not changed


@pytest.mark.parametrize("version", ["1.4.2", "0.0.0-dev", "v2.1.0+build.7", "1d0692e8289f"])
def test_plain_versions_pass(version: str) -> None:
    assert check_version(version) == version


@pytest.mark.parametrize(
    "version", ["", "1.0 -X main.admin=true", "1.0'", '1"', "-ldflags", "a" * 129, "1.0\n2"]
)
def test_versions_that_could_carry_flags_are_refused(version: str) -> None:
    with pytest.raises(ConfigError, match="not a plain version"):
        check_version(version)


def test_auto_approve_is_refused_for_production_outside_demo_mode() -> None:
    with pytest.raises(ConfigError, match="KYB_DEMO_MODE=true"):
        check_auto_approve(True, ["staging", "production"], demo_mode=False)
    check_auto_approve(True, ["staging", "production"], demo_mode=True)
    check_auto_approve(True, ["staging"], demo_mode=False)  # staging only: allowed
    check_auto_approve(False, ["staging", "production"], demo_mode=False)
