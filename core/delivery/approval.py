"""Who may skip production's human gates: nobody, except the local platform's demo."""

from __future__ import annotations

from collections.abc import Sequence

from core.errors import ConfigError

PRODUCTION = "production"
DEMO_SETTING = "KYB_DEMO_MODE"


def check_auto_approve(auto_approve: bool, environments: Sequence[str], demo_mode: bool) -> None:
    """Refuse auto_approve for a delivery that reaches production, unless in demo mode.

    auto_approve answers every promotion gate and human checklist item at once: in production it
    would let anyone who can start a run (or forge its trigger) release unseen.

    Raises:
        ConfigError: auto_approve with production among the environments, outside demo mode.
    """
    if auto_approve and PRODUCTION in environments and not demo_mode:
        raise ConfigError(
            "auto_approve would approve production's gates unseen: it is for the local "
            f"platform's demo only ({DEMO_SETTING}=true); leave it off and approve in the "
            "Prefect UI"
        )
