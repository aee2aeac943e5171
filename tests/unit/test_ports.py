"""The platform's ports are kept out of the kernel's ephemeral range (sandbox/ports.py)."""

from __future__ import annotations

from pathlib import Path

from sandbox.ports import platform_ports, reserve
from sandbox.settings import Settings


def test_the_platform_s_ports_are_added_to_those_reserved(tmp_path: Path) -> None:
    settings = Settings()
    reserved = tmp_path / "ip_local_reserved_ports"
    reserved.write_text("8000-8002,9999\n")
    assert reserve(settings, reserved).startswith("reserved ")
    kept = reserved.read_text().split(",")
    assert {"8000", "8001", "8002", "9999"} <= set(kept)
    assert {str(p) for p in platform_ports(settings)} <= set(kept)
    assert {36443, 37443, 4200, 9108} <= platform_ports(settings)
    assert reserve(settings, reserved) == "ports already reserved"


def test_without_the_rights_nothing_changes_and_it_says_so(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "file"
    said = reserve(Settings(), missing)
    assert said.startswith("could not reserve") and not missing.exists()
