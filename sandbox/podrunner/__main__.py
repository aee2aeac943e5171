"""`python -m sandbox.podrunner`: run the pod runner in the foreground (the component starts it)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from sandbox.podrunner.runner import Runner
from sandbox.settings import CLUSTER_NAME, Settings


def _stop(signum: int, _frame: object) -> None:
    """SIGTERM: leave the containers running (adopted on the next start), as a kubelet does."""
    logging.getLogger("podrunner").info("stopping on signal %d", signum)
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and run until SIGTERM."""
    settings = Settings()
    parser = argparse.ArgumentParser(prog="python -m sandbox.podrunner", description=__doc__)
    parser.add_argument("--cluster", default=CLUSTER_NAME, help="the cluster's name (a label)")
    parser.add_argument("--kubeconfig", type=Path, default=settings.kubeconfig)
    parser.add_argument(
        "--status-file",
        type=Path,
        default=settings.dir("podrunner") / "status.json",
        help="written every few seconds while the runner works",
    )
    parser.add_argument(
        "--pod-cidr",
        default=settings.run_pod_cidr,
        help="the pods' IPs (KYB_RUN_POD_CIDR; KYB_DR_RUN_POD_CIDR for the DR cluster's runner)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    for noisy in ("urllib3", "httpx", "httpcore"):  # a line per probe otherwise
        logging.getLogger(noisy).setLevel(logging.ERROR)
    signal.signal(signal.SIGTERM, _stop)
    runner = Runner(settings, args.cluster, args.kubeconfig, args.status_file, args.pod_cidr)
    logging.getLogger("podrunner").info(
        "watching pods labelled kyb.dev/run=true on %s, pod IPs from %s",
        args.cluster,
        args.pod_cidr,
    )
    runner.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
