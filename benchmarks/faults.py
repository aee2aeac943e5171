"""Time from an orchestrator fault's end to a clean cluster, for each fault of issue 22.

Run `uv run sandbox up` first. It runs the fault tests (tests/integration/
test_orchestrator_faults.py and the pre-emption test) once, on the real platform, and prints the
seconds each took from the fault's end (the server back, the worker restarted, the process
killed, the rollback asked for) to a clean state: the run over, the app served by one version
at full replicas, the canary at zero. What bounds each figure:

- server away: the release went on without it; the rest is the run reporting its end.
- worker or flow process killed: the lock's 60 s lease (a killed process cannot free it), then
  the reconcile schedule (20 s in the test, 60 s in prefect.yaml), then the resumed run.
- a release killed outside a deployment: the same, then its rollback.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).parents[1]
FILES = (
    "tests/integration/test_orchestrator_faults.py",
    "tests/integration/test_rollback_preempts.py",
)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "faults.xml"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:logging",
                "-o",
                "junit_family=legacy",  # the family that keeps record_property's figures
                f"--junitxml={report}",
                *FILES,
            ],
            cwd=ROOT,
            check=False,
        )
        cases = ET.parse(report).getroot().iter("testcase")
        rows = []
        for case in cases:
            props = {p.get("name"): p.get("value") for p in case.iter("property")}
            failed = case.find("failure") is not None or case.find("error") is not None
            rows.append((case.get("name", ""), props.get("seconds_to_clean", "-"), failed))
    print(f"\n{'fault':70} {'s to clean':>10}  result")
    for name, seconds, failed in rows:
        print(f"{name.removeprefix('test_'):70} {seconds:>10}  {'FAILED' if failed else 'clean'}")
    worst = max((float(s) for _, s, f in rows if s != "-" and not f), default=0.0)
    print(f"worst: {worst:.0f}s (goal: within minutes, with no human step)")
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
