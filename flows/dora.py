"""The `dora-report` flow: DORA's four keys from the pipeline's own runs, as an artifact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from core.delivery.dora import PRODUCTION, dora
from flows.form import titled
from tasks.dora import facts_from_prefect

ARTIFACT = "dora-report"


@flow(name="dora-report")
def dora_report(
    days: Annotated[int, titled("Days")] = 30,
    app: Annotated[str, titled("App")] = "",
    production: Annotated[list[str] | None, titled("Production environments")] = None,
) -> dict[str, Any]:
    """Compute the DORA keys over the last `days` days and publish the `dora-report` artifact.

    Args:
        days: length of the window, ending now.
        app: only this app ("" for every app the pipeline released).
        production: the environments that count as production (default: `production`): the
            names of the Environment blocks releases went through, or `ns-<namespace>` for a
            release into a namespace no Environment names.
    """
    if days <= 0:
        raise ValueError(f"days must be positive, not {days}")
    until = datetime.now(UTC)
    since = until - timedelta(days=days)
    facts = facts_from_prefect(since, until, app)
    report = dora(facts, since, until, production or [PRODUCTION])
    scope = f" of {app}" if app else ""
    create_markdown_artifact(
        report.as_markdown(), key=ARTIFACT, description=f"DORA keys{scope}, last {days} days"
    )
    get_run_logger().info(
        "DORA keys%s over %d days: %d deployments of %d attempts",
        scope,
        days,
        report.deployments,
        report.attempts,
    )
    return report.as_dict()
