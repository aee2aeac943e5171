"""The delivery flow's overhead over the sum of its stage commands, measured in one run."""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from pathlib import Path

from sandbox.components.prefect_server import client_env

ROOT = Path(__file__).resolve().parents[1]
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.update(client_env(os.environ))  # the platform's API and auth (0600 profiles)
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

import httpx  # noqa: E402
import yaml  # noqa: E402

from benchmarks.ci_stages import _sh, by_hand  # noqa: E402
from blocks import ContainerRegistry  # noqa: E402
from blocks.tools import find_tool  # noqa: E402
from core.analysis.builtins import BUILTINS  # noqa: E402
from core.analysis.templates import rescheduled  # noqa: E402
from core.ci import GitRef  # noqa: E402
from flows.delivery import delivery  # noqa: E402
from sandbox.load import Load  # noqa: E402
from sandbox.platform import BLOCK_NAME, Platform  # noqa: E402
from sandbox.tools import ensure_gosec  # noqa: E402

EXAMPLE = ROOT / "examples" / "kyb-platform"
FAST = {"interval": 2, "count": 4, "initial_delay": 5}
WINDOW = FAST["initial_delay"] + (FAST["count"] - 1) * FAST["interval"]
QUERIES = ("sum(rate(http_requests_total[30s]))", "up", "sum(rate(http_requests_total[30s]))")


def _sha() -> str:
    return uuid.uuid4().hex + uuid.uuid4().hex[:8]


def flow_once() -> float:
    started = time.monotonic()
    # staging's users through the entry point, so its post-deploy analysis has requests to judge
    with Load([Platform().traefik.url], host="kyb-platform.kyb-staging", max_seconds=1200):
        state = delivery(
            commit=_sha(),
            branch="develop",
            return_state=True,
            templates=[rescheduled(BUILTINS["error-rate"], **FAST)],
        )
    if not state.is_completed():
        raise SystemExit(f"delivery failed: {state.message}")
    return time.monotonic() - started


def _manifests(kubectl: str, image: str, ns: str) -> str:
    """The staging overlay, image set, moved into namespace `ns` (its Namespace object dropped)."""
    docs = yaml.safe_load_all(
        _sh([kubectl, "kustomize", str(EXAMPLE / "deploy" / "staging")]).stdout
    )
    out = []
    for doc in docs:
        if not doc or doc["kind"] == "Namespace":
            continue
        doc["metadata"]["namespace"] = ns
        for c in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            c["image"] = image
        out.append(doc)
    return yaml.safe_dump_all(out)


def hand_once(plat: Platform, registry: ContainerRegistry, tmp: Path, gosec: Path) -> dict:
    kubectl = str(plat.settings.k8s_bin / "kubectl")
    env = {**os.environ, **plat.env()}
    ref = GitRef(sha=_sha(), branch="develop")
    times = by_hand(registry, ref, True, gosec, tmp / ref.sha[:8], env, set())
    ci_total = times.pop("total")
    image = f"{registry.address}/kyb-bench/kyb-platform:develop-{ref.sha[:7]}"
    ns = f"bench-{ref.sha[:8]}"
    t0 = time.monotonic()
    objects = tmp / f"{ns}.yaml"
    objects.write_text(_manifests(kubectl, image, ns))
    _sh([kubectl, "create", "namespace", ns], env=env)
    _sh([kubectl, "apply", "--dry-run=server", "-f", str(objects)], env=env)
    promtool, alerts = find_tool("promtool"), EXAMPLE / "deploy" / "alerts"
    _sh([promtool, "check", "rules", str(alerts / "deployment-alerts.yml")])
    _sh([promtool, "test", "rules", "deployment-alerts.test.yml"], cwd=alerts)
    gates = time.monotonic() - t0
    t0 = time.monotonic()
    _sh([kubectl, "apply", "-f", str(objects)], env=env)
    _sh(
        [kubectl, "-n", ns, "rollout", "status", "deployment/kyb-platform", "--timeout=300s"],
        env=env,
    )
    deploy = time.monotonic() - t0
    t0 = time.monotonic()
    # what the flow's checks do after the rollout: the analysis window, then health and smoke
    # requests through the apiserver's service proxy to the real pods, and Prometheus queries
    time.sleep(WINDOW)
    proxy = f"/api/v1/namespaces/{ns}/services/kyb-platform:80/proxy"
    for path in ("/health", "/api/v1/verify?business_id=smoke"):
        _sh([kubectl, "get", "--raw", f"{proxy}{path}"], env=env)
    for q in QUERIES:
        httpx.get(f"{plat.prometheus.url}/api/v1/query", params={"query": q}, timeout=5)
    _sh([kubectl, "delete", "namespace", ns, "--wait=false"], env=env)
    verify = time.monotonic() - t0
    return {
        "ci": ci_total,
        "gates": gates,
        "deploy": deploy,
        "verify": verify,
        "total": ci_total + gates + deploy + verify,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    plat = Platform()
    registry = ContainerRegistry.load(BLOCK_NAME)
    gosec = ensure_gosec()
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"kyb-bench-delivery-{uuid.uuid4().hex[:6]}"
    tmp.mkdir(parents=True)
    flows, hands = [], []
    for r in range(args.rounds):  # alternate which goes first
        order = ("flow", "hand") if r % 2 == 0 else ("hand", "flow")
        for which in order:
            if which == "flow":
                flows.append(flow_once())
            else:
                hands.append(hand_once(plat, registry, tmp, gosec))
        h = hands[-1]
        print(
            f"round {r + 1}: flow {flows[-1]:.1f}s; by hand {h['total']:.1f}s (CI {h['ci']:.1f}, "
            f"gates {h['gates']:.1f}, deploy {h['deploy']:.1f}, verify {h['verify']:.1f} "
            f"incl. the {WINDOW}s analysis window)"
        )
    flow_med = statistics.median(flows)
    hand_med = statistics.median(h["total"] for h in hands)
    print(
        f"median: flow {flow_med:.1f}s, by hand {hand_med:.1f}s, overhead ratio "
        f"{flow_med / hand_med:.2f} ({flow_med - hand_med:+.1f}s)"
    )


if __name__ == "__main__":
    main()
