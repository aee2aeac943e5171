"""`sandbox up|down|status|env`: the local platform of real services on 127.0.0.1."""

from __future__ import annotations

import argparse
import shlex
import sys
import time

from sandbox.errors import PlatformError
from sandbox.platform import Platform


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox command line; return the exit code."""
    parser = argparse.ArgumentParser(prog="sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="install what is missing and start every service (idempotent)")
    up.add_argument("components", nargs="*", help="only these (docker registry prometheus ...)")
    down = sub.add_parser("down", help="stop the services the platform started, nothing else")
    down.add_argument("components", nargs="*")
    sub.add_parser("status", help="show what runs and where")
    sub.add_parser("env", help='print shell exports: eval "$(sandbox env)"')
    args = parser.parse_args(argv)

    try:
        platform = Platform()
        if args.cmd == "up":
            started = time.monotonic()
            timings = platform.up(args.components or None)
            print("timings:")
            print("\n".join(timings.lines()))
            print(f"  total              {time.monotonic() - started:7.1f}s")
            print('platform is up; point your shell at it with: eval "$(sandbox env)"')
        elif args.cmd == "down":
            platform.down(args.components or None)
            print("platform stopped")
        elif args.cmd == "status":
            rows = platform.status()
            width = max(len(row.name) for row in rows)  # token-registry, prometheus-pods, ...
            for row in rows:
                print(f"{row.name:<{width}} {row.state:<9} {row.address:<32} {row.detail}")
            return 0 if all(r.state != "stopped" for r in rows) else 3
        else:
            for key, value in platform.env().items():
                print(f"export {key}={shlex.quote(value)}")
    except (PlatformError, ValueError) as exc:
        print(f"sandbox {args.cmd}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
