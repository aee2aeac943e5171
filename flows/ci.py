"""The `ci` subflow: tests, quality and security gates with the image build at once, push last."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture, as_completed
from pydantic import BaseModel

from blocks import ContainerRegistry
from core.ci import GateReport, GitRef, ImageResult, Severity, TestReport
from core.errors import PipelineError
from tasks.images import build_image, prepare_context, push_image
from tasks.quality import quality_gate, run_tests
from tasks.security import security_scan

GATES = ("tests", "quality", "security")  # what must pass before anything is pushed
STAGES = (*GATES, "context", "build")  # the order in which failures are reported


class CIResult(BaseModel):
    """What the CI stages found and pushed, and when each stage finished.

    seconds: for each of STAGES, the time from the pipeline's start until it finished (they all
    start together); "push" is the push's own duration and "total" the whole pipeline's.
    """

    tests: TestReport
    quality: GateReport
    security: GateReport
    image: ImageResult
    seconds: dict[str, float]


def _error(stage: str, future: PrefectFuture) -> BaseException | None:
    """The exception a stage failed with, or None when it completed."""
    future.wait()  # a finished future: its final state is then local, not read from the API
    state = future.state
    if state.is_completed():
        return None
    if state.is_failed() or state.is_crashed():
        found = state.result(raise_on_failure=False)
        if isinstance(found, BaseException):
            return found
    # NotReady (an upstream stage failed), cancelled, ...: never taken for a success
    return PipelineError(f"the {stage} stage ended {state.name}: {state.message}", stage=stage)


@flow(name="ci", validate_parameters=False)
def run_ci_stages(
    registry: ContainerRegistry,
    repository: str,
    directory: str | Path,
    ref: GitRef,
    source: str,
    app: str,
    *,
    use_test_cache: bool = True,
    race: bool = True,
    quality_threshold: str | Severity = "critical",
    security_threshold: str | Severity = "low",
    scanners: Sequence[str] = ("gosec",),
    context_dir: str | Path | None = None,
    version: str = "0.0.0-dev",
    docker_host: str | None = None,
) -> CIResult:
    """Tests, quality gate and security scan at once, the build meanwhile, the push if all pass.

    Run the tests, the quality gate and the security scan concurrently, build the image
    meanwhile, and push it only when every gate passed; the delivery runs it as a subflow.

    Args:
        registry: the registry block to push to.
        repository: the repository inside the registry, e.g. "kyb-platform".
        directory: the Go project (module root with the context script, see prepare_context).
        ref: the branch or pull request and commit being built.
        source: the repository URL for org.opencontainers.image.source.
        app: the application's name (artifact keys, messages, image title).
        use_test_cache: False makes go test run every test again (-count=1).
        race: run the tests with the race detector.
        quality_threshold: the lowest severity that fails the quality gate.
        security_threshold: the lowest severity that fails the security scan.
        scanners: the security scanners (names from tasks.security.SCANNERS).
        context_dir: where the build context goes (default: a temporary folder, removed at the
            end).
        version: compiled into the binary by the context script.
        docker_host: the Docker daemon (default: DOCKER_HOST or the local socket).

    Returns:
        CIResult: every stage's report, the pushed image and the stages' timings.

    Raises:
        TestsFailed, CompileFailed, GateFailed, BuildFailed, ...: the error of the first failed
            stage in STAGES order, raised once every stage has finished; nothing is pushed, and
            the other failures are logged and noted on the error.
    """
    own_context = context_dir is None  # made here, so removed here once the image is built
    if own_context:
        context_dir = tempfile.mkdtemp(prefix="kyb-context-")
    try:
        log, t0 = get_run_logger(), time.monotonic()
        futures: dict[str, PrefectFuture] = {
            "tests": run_tests.submit(directory, app, race=race, use_test_cache=use_test_cache),
            "quality": quality_gate.submit(directory, app, threshold=quality_threshold),
            "security": security_scan.submit(
                directory, app, scanners, threshold=security_threshold
            ),
            "context": prepare_context.submit(directory, context_dir, version=version),
        }
        futures["build"] = build_image.submit(
            registry, repository, futures["context"], ref, source, app=app, docker_host=docker_host
        )
        stage_of = {future: stage for stage, future in futures.items()}
        seconds: dict[str, float] = {}
        for future in as_completed(list(futures.values())):
            seconds[stage_of[future]] = round(time.monotonic() - t0, 2)
        failed = {s: e for s in STAGES if (e := _error(s, futures[s])) is not None}
        if failed:
            for stage, error in failed.items():
                log.error("%s stage of %s failed: %s", stage, app, error)
            error = next(iter(failed.values()))
            log.error("nothing pushed for %s: %s failed", app, ", ".join(failed))
            error.add_note(f"failed stages: {', '.join(failed)}; nothing was pushed")
            raise error
        log.info("%s: every gate passed after %.1fs; pushing", app, max(seconds[g] for g in GATES))
        pushed_at = time.monotonic()
        image = push_image(registry, futures["build"].result(), docker_host=docker_host)
        seconds["push"] = round(time.monotonic() - pushed_at, 2)
        seconds["total"] = round(time.monotonic() - t0, 2)
        return CIResult(**{g: futures[g].result() for g in GATES}, image=image, seconds=seconds)
    finally:
        if own_context:
            shutil.rmtree(context_dir, ignore_errors=True)
