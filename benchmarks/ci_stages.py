"""Measure the CI stages as Prefect tasks against the same commands run by hand, on the example.

test + scan + image context + build + push of examples/kyb-platform, through a small flow and
through a shell (go test, gosec, build-context.sh, docker login/build/push) in the same run:
  cold  a new commit sha: nothing to reuse; go test -count=1 (the Go build cache stays warm)
  warm  the same sha again: Go test cache, and the flow reuses the image already in the registry
        (by hand, docker build hits its layer cache and docker push finds every layer present)
Needs the local platform (`uv run sandbox up`). Only the images it builds are removed.

    uv run python benchmarks/ci_stages.py [--rounds N]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox.settings import HOST, Ports  # noqa: E402

# Prefect reads its settings at import time: point it at the platform's server first.
os.environ.setdefault("PREFECT_API_URL", f"http://{HOST}:{Ports().prefect}/api")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

import docker  # noqa: E402
from prefect import flow  # noqa: E402
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings  # noqa: E402

from blocks import ContainerRegistry  # noqa: E402
from core.ci import GitRef, image_tags, oci_labels  # noqa: E402
from sandbox.platform import BLOCK_NAME, Platform  # noqa: E402
from tasks.images import build_and_push, prepare_context  # noqa: E402
from tasks.quality import run_tests  # noqa: E402
from tasks.security import ensure_gosec, security_scan  # noqa: E402

EXAMPLE = ROOT / "examples" / "kyb-platform"
REPO = "kyb-bench/kyb-platform"
SOURCE = "https://github.com/acme/kyb-platform"
STAGES = ("test", "scan", "context", "build+push")
WHO = ("hand", "tasks", "tasks-nohb")


def _sh(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=900, **kwargs)
    if proc.returncode != 0:
        tail = f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        raise SystemExit(f"{' '.join(argv[:4])} failed:\n{tail}")
    return proc


@flow(name="ci-stages-benchmark")
def ci(registry: ContainerRegistry, ref: GitRef, cold: bool, out: str) -> dict[str, float]:
    """test, scan, context, build+push as tasks; seconds per stage (task runs included)."""
    times, t0 = {}, time.monotonic()
    run_tests(EXAMPLE, "kyb-platform", use_test_cache=not cold)
    times["test"], t0 = time.monotonic() - t0, time.monotonic()
    security_scan(EXAMPLE, "kyb-platform")
    times["scan"], t0 = time.monotonic() - t0, time.monotonic()
    context = prepare_context(EXAMPLE, Path(out) / "ctx")
    times["context"], t0 = time.monotonic() - t0, time.monotonic()
    build_and_push(registry, REPO, context, ref, SOURCE, app="kyb-platform")
    times["build+push"] = time.monotonic() - t0
    return times


def by_hand(
    registry, ref: GitRef, cold: bool, gosec: Path, out: Path, env: dict, ours: set[str]
) -> dict[str, float]:
    """The same stages as shell commands; seconds per stage (built image ids added to ours)."""
    go = "go" if subprocess.run(["which", "go"], capture_output=True).returncode == 0 else (
        "/usr/local/go/bin/go")  # fmt: skip
    tags, _ = image_tags(ref)
    name = f"{registry.address}/{REPO}"
    out.mkdir(parents=True)
    times, t0 = {}, time.monotonic()
    _sh([go, "test", "-json", "-race", f"-coverprofile={out}/cover.out",
         *(["-count=1"] if cold else []), "./..."], cwd=EXAMPLE)  # fmt: skip
    times["test"], t0 = time.monotonic() - t0, time.monotonic()
    _sh([str(gosec), "-fmt", "json", "-no-fail", "./..."], cwd=EXAMPLE)
    times["scan"], t0 = time.monotonic() - t0, time.monotonic()
    _sh([str(EXAMPLE / "build-context.sh"), str(out / "ctx")], cwd=EXAMPLE)
    times["context"], t0 = time.monotonic() - t0, time.monotonic()
    password = registry.password.get_secret_value()
    _sh(["docker", "login", "-u", registry.username, "--password-stdin", registry.address],
        input=password, env=env)  # fmt: skip
    labels = oci_labels(SOURCE, ref.sha, version=tags[0], title="kyb-platform")
    flags = [a for k, v in labels.items() for a in ("--label", f"{k}={v}")]
    flags += [a for t in tags for a in ("-t", f"{name}:{t}")]
    built = _sh(["docker", "build", "-q", *flags, str(out / "ctx")], env=env)
    ours.add(built.stdout.strip())
    for tag in tags:
        _sh(["docker", "push", "-q", f"{name}:{tag}"], env=env)
    times["build+push"] = time.monotonic() - t0
    return times


def _flow_run(registry, ref: GitRef, cold: bool, out: Path, heartbeat: bool) -> dict[str, float]:
    settings = {} if heartbeat else {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
    out.mkdir(parents=True)
    with temporary_settings(settings):
        t0 = time.monotonic()
        times = ci(registry, ref, cold, str(out))
        times["total"] = time.monotonic() - t0  # the whole flow run, orchestration included
    return times


def main() -> None:
    """Run cold and warm rounds through tasks and by hand; print seconds and overhead ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="repeat cold+warm this often")
    args = parser.parse_args()
    plat = Platform()
    registry, gosec = ContainerRegistry.load(BLOCK_NAME), ensure_gosec()
    work = Path(tempfile.mkdtemp(prefix="kyb-bench-ci-"))
    env = {**os.environ, "DOCKER_CONFIG": str(work / "docker-config")}  # not ~/.docker
    refs = {"warm-up": GitRef(sha=secrets.token_hex(20), branch="bench/warm-up")}
    _flow_run(registry, refs["warm-up"], True, work / "warm-up", True)  # one-time engine setup
    rows: dict[str, list[dict[str, float]]] = {}
    ours: set[str] = set()  # image ids: removed by id, else they stay under their repo digest
    for n in range(args.rounds):
        for who in WHO:
            refs[f"{who}{n}"] = GitRef(sha=secrets.token_hex(20), branch=f"bench/{who}")
        for phase, cold in (("cold", True), ("warm", False)):
            out = work / f"{n}-{phase}"
            hand = by_hand(registry, refs[f"hand{n}"], cold, gosec, out / "hand", env, ours)
            hand["total"] = sum(hand.values())
            rows.setdefault(f"{phase} hand", []).append(hand)
            for who, beat in (("tasks", True), ("tasks-nohb", False)):
                times = _flow_run(registry, refs[f"{who}{n}"], cold, out / who, beat)
                rows.setdefault(f"{phase} {who}", []).append(times)
    client = docker.DockerClient(base_url=plat.docker.env()["DOCKER_HOST"])
    for tag in (t for ref in refs.values() for t in image_tags(ref)[0]):
        with contextlib.suppress(docker.errors.ImageNotFound):
            ours.add(client.images.get(f"{registry.address}/{REPO}:{tag}").id)
    for image_id in ours:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(image_id, force=True)
    client.close()
    _print(rows, args.rounds)


def _print(rows: dict[str, list[dict[str, float]]], rounds: int) -> None:
    def mean(key: str, stage: str) -> float:
        return sum(r[stage] for r in rows[key]) / len(rows[key])

    print(f"CI stages of examples/kyb-platform, seconds, mean of {rounds} round(s) after a warm-up")
    print("  tasks = the flow with Prefect's defaults; tasks-nohb = flow heartbeats off")
    cols = [f"{p} {w}" for p in ("cold", "warm") for w in WHO]
    print(f"  {'stage':<11}" + "".join(f"{c:>16}" for c in cols))
    for stage in (*STAGES, "total"):
        print(f"  {stage:<11}" + "".join(f"{mean(c, stage):>16.2f}" for c in cols))
    for phase in ("cold", "warm"):
        hand = mean(f"{phase} hand", "total")
        for who in WHO[1:]:
            t = mean(f"{phase} {who}", "total")
            print(f"  {phase} {who:<10}: {t:6.2f}s vs hand {hand:6.2f}s -> overhead "
                  f"{100 * (t - hand) / hand:+6.1f}% (ratio {t / hand:.2f})")  # fmt: skip
    print("  warm tasks reuse the image in the registry (no build, no push); by hand it is rebuilt")
    print("  from the layer cache and pushed again (every layer already present)")


if __name__ == "__main__":
    main()
