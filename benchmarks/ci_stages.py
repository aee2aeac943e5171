"""Measure the concurrent CI pipeline (flows/ci.py) against the same commands by hand."""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from sandbox.components.prefect_server import client_env

ROOT = Path(__file__).resolve().parents[1]

# Prefect reads its settings at import time: point it at the platform's server first.
os.environ.update(client_env(os.environ))  # the platform's API and auth (0600 profiles)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

import docker  # noqa: E402
from prefect import flow  # noqa: E402

from blocks import ContainerRegistry  # noqa: E402
from blocks.tools import find_tool  # noqa: E402
from core.ci import GitRef, image_tags, oci_labels  # noqa: E402
from flows.ci import STAGES, run_ci_stages  # noqa: E402
from sandbox.platform import BLOCK_NAME, Platform  # noqa: E402
from sandbox.tools import ensure_gosec  # noqa: E402

EXAMPLE = ROOT / "examples" / "kyb-platform"
REPO = "kyb-bench/kyb-platform"
SOURCE = "https://github.com/acme/kyb-platform"
APP = "kyb-platform"
HAND_STAGES = ("tests", "quality", "security", "context", "build+push")
WARMTH = ("cold", "warm")


def _sh(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=900, **kwargs)
    if proc.returncode != 0:
        tail = f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        raise SystemExit(f"{' '.join(argv[:4])} failed:\n{tail}")
    return proc


@flow(name="ci-stages-benchmark")
def ci(registry: ContainerRegistry, ref: GitRef, cold: bool, out: str) -> dict[str, float]:
    """The concurrent pipeline; seconds until each stage finished, the push's, the total."""
    result = run_ci_stages(
        registry,
        REPO,
        EXAMPLE,
        ref,
        SOURCE,
        APP,
        use_test_cache=not cold,
        context_dir=Path(out) / "ctx",
    )
    return result.seconds


def by_hand(
    registry, ref: GitRef, cold: bool, gosec: Path, out: Path, env: dict, ours: set[str]
) -> dict[str, float]:
    """The same stages as shell commands, one after the other.

    seconds per stage (built image ids added to ours).
    """
    go, gofmt = find_tool("go", "install Go"), find_tool("gofmt", "it comes with Go")
    tags, _ = image_tags(ref)
    name = f"{registry.address}/{REPO}"
    out.mkdir(parents=True)
    times, t0 = {}, time.monotonic()
    _sh(
        [
            go,
            "test",
            "-json",
            "-race",
            f"-coverprofile={out}/cover.out",
            *(["-count=1"] if cold else []),
            "./...",
        ],
        cwd=EXAMPLE,
    )
    times["tests"], t0 = time.monotonic() - t0, time.monotonic()
    _sh([gofmt, "-l", "."], cwd=EXAMPLE)
    _sh([go, "vet", "./..."], cwd=EXAMPLE)
    times["quality"], t0 = time.monotonic() - t0, time.monotonic()
    _sh([str(gosec), "-fmt", "json", "-no-fail", "./..."], cwd=EXAMPLE)
    times["security"], t0 = time.monotonic() - t0, time.monotonic()
    _sh([str(EXAMPLE / "build-context.sh"), str(out / "ctx")], cwd=EXAMPLE)
    times["context"], t0 = time.monotonic() - t0, time.monotonic()
    password = registry.password.get_secret_value()
    _sh(
        ["docker", "login", "-u", registry.username, "--password-stdin", registry.address],
        input=password,
        env=env,
    )
    labels = oci_labels(SOURCE, ref.sha, version=tags[0], title=APP)
    flags = [a for k, v in labels.items() for a in ("--label", f"{k}={v}")]
    flags += [a for t in tags for a in ("-t", f"{name}:{t}")]
    built = _sh(["docker", "build", "-q", *flags, str(out / "ctx")], env=env)
    ours.add(built.stdout.strip())
    for tag in tags:
        _sh(["docker", "push", "-q", f"{name}:{tag}"], env=env)
    times["build+push"] = time.monotonic() - t0
    times["total"] = sum(times.values())
    return times


def _flow_run(registry, ref: GitRef, cold: bool, out: Path) -> dict[str, float]:
    out.mkdir(parents=True)
    t0 = time.monotonic()
    times = ci(registry, ref, cold, str(out))
    times["flow run"] = time.monotonic() - t0  # the whole flow run, orchestration included
    return times


def main() -> None:
    """Run cold and warm rounds through the pipeline and by hand; print seconds and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="repeat cold+warm this often")
    args = parser.parse_args()
    plat = Platform()
    registry, gosec = ContainerRegistry.load(BLOCK_NAME), ensure_gosec()
    work = Path(tempfile.mkdtemp(prefix="kyb-bench-ci-"))
    env = {**os.environ, "DOCKER_CONFIG": str(work / "docker-config")}  # not ~/.docker
    refs = {"warm-up": GitRef(sha=secrets.token_hex(20), branch="bench/warm-up")}
    _flow_run(registry, refs["warm-up"], True, work / "warm-up")  # one-time engine setup
    rows: dict[str, list[dict[str, float]]] = {}
    ours: set[str] = set()  # image ids: removed by id, else they stay under their repo digest
    for n in range(args.rounds):
        for who in ("hand", "tasks"):
            refs[f"{who}{n}"] = GitRef(sha=secrets.token_hex(20), branch=f"bench/{who}")
        for phase, cold in (("cold", True), ("warm", False)):
            out = work / f"{n}-{phase}"
            order = ("hand", "tasks") if n % 2 == 0 else ("tasks", "hand")
            for who in order:
                if who == "hand":
                    times = by_hand(registry, refs[f"hand{n}"], cold, gosec, out / who, env, ours)
                else:
                    times = _flow_run(registry, refs[f"tasks{n}"], cold, out / who)
                rows.setdefault(f"{phase} {who}", []).append(times)
            _print_run(n, phase, order, rows)
    client = docker.DockerClient(base_url=plat.docker.env()["DOCKER_HOST"])
    for tag in (t for ref in refs.values() for t in image_tags(ref)[0]):
        with contextlib.suppress(docker.errors.ImageNotFound):
            ours.add(client.images.get(f"{registry.address}/{REPO}:{tag}").id)
    for image_id in ours:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(image_id, force=True)
    client.close()
    _print_summary(rows, args.rounds)


def _print_run(n: int, phase: str, order: tuple[str, ...], rows) -> None:
    hand, tasks = rows[f"{phase} hand"][-1]["total"], rows[f"{phase} tasks"][-1]["flow run"]
    print(
        f"  round {n + 1} {phase} ({' first, '.join(order)} second): pipeline {tasks:6.2f}s "
        f"vs hand {hand:6.2f}s -> overhead {100 * (tasks - hand) / hand:+6.1f}% "
        f"(ratio {tasks / hand:.2f})",
        flush=True,
    )


def _print_summary(rows: dict[str, list[dict[str, float]]], rounds: int) -> None:
    def median(key: str, stage: str) -> float:
        return statistics.median(r[stage] for r in rows[key])

    print(
        f"CI stages of examples/kyb-platform, seconds, median of {rounds} round(s) after a "
        "warm-up (Prefect defaults, heartbeats on)"
    )
    print("  by hand: each stage's own duration, one after the other")
    print(f"  {'stage':<11}{'cold':>9}{'warm':>9}")
    for stage in (*HAND_STAGES, "total"):
        print(f"  {stage:<11}" + "".join(f"{median(f'{p} hand', stage):>9.2f}" for p in WARMTH))
    print("  pipeline: when each stage finished, counted from the start (they start together)")
    print(f"  {'stage':<11}{'cold':>9}{'warm':>9}")
    for stage in (*STAGES, "push", "total", "flow run"):
        print(f"  {stage:<11}" + "".join(f"{median(f'{p} tasks', stage):>9.2f}" for p in WARMTH))
    for phase in WARMTH:
        ratios = [
            t["flow run"] / h["total"]
            for t, h in zip(rows[f"{phase} tasks"], rows[f"{phase} hand"], strict=True)
        ]
        ratio = statistics.median(ratios)
        runs = ", ".join(f"{r:.2f}" for r in ratios)
        print(
            f"  {phase}: overhead ratio per run {runs}; median {ratio:.2f} "
            f"({100 * (ratio - 1):+.1f}%, goal under +10%)"
        )
    print("  warm: the pipeline reuses the image in the registry (no build, no push); by hand it")
    print("  is rebuilt from the layer cache and pushed again (every layer already present)")


if __name__ == "__main__":
    main()
