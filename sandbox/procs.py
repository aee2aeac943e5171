"""Start, find and stop the platform's daemons; only processes in our pid files are touched."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from sandbox.errors import PlatformError


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _exe(pid: int) -> str:
    """The program a process runs, or "" when it is gone.

    Its cmdline may read empty, e.g. while its leader is a zombie whose other threads still run.
    """
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


class Daemon:
    """One long-running process owned by the platform, tracked by a pid file in its state folder."""

    def __init__(self, name: str, state_dir: Path) -> None:
        self.name = name
        self.pidfile = state_dir / f"{name}.pid"
        self.logfile = state_dir / f"{name}.log"
        self._proc: subprocess.Popen | None = None  # the process this object started, if any

    def pid(self) -> int | None:
        """Return the pid if the recorded process still runs the recorded program, else None."""
        try:
            record = json.loads(self.pidfile.read_text())
        except (OSError, ValueError):
            return None
        pid = int(record.get("pid", 0))
        argv = _cmdline(pid) if pid > 0 else []
        program = Path(record.get("program", "")).name
        # a script started through its shebang shows up as "python /path/to/script ..."
        if program and any(Path(arg).name == program for arg in argv[:2]):
            return pid
        if pid > 0 and not argv and program and Path(_exe(pid)).name == program:
            return pid  # cmdline unreadable for the moment, but it runs our program
        return None  # gone, or the pid was reused by another program

    def exited(self) -> int | None:
        """The exit code of the process this object started, once it ended; else None.

        Without a process of its own (one started by an earlier `sandbox up`), a recorded pid
        that no longer runs its program counts as exited (code -1).
        """
        if self._proc is not None:
            return self._proc.poll()
        return -1 if self.pid() is None else None

    def start(
        self, argv: Sequence[str], env: Mapping[str, str] | None = None, user: str | None = None
    ) -> int:
        """Start argv (as `user`, if given) in its own session, output to the log; return pid."""
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        with self.logfile.open("ab") as log:
            try:
                proc = subprocess.Popen(
                    list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **(env or {})},
                    start_new_session=True,
                    user=user,
                )
            except OSError as exc:
                raise PlatformError(
                    self.name,
                    f"cannot run {argv[0]}: {exc.strerror}",
                    "run `sandbox up` to install",
                ) from None
        self._proc = proc
        self.pidfile.write_text(json.dumps({"pid": proc.pid, "program": argv[0]}))
        return proc.pid

    def ensure(
        self,
        argv: Callable[[], Sequence[str]],
        answers: Callable[[], bool],
        what: str,
        port: int,
        fix: str,
        timeout: float = 60,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
    ) -> None:
        """Start the daemon unless ours already runs, then wait until answers() is true.

        argv is called only when a start is needed (it may write config files). A port held by a
        process we did not start is an error that names the port and how to free it.
        """
        if self.pid() is None:
            if port_open(port):
                raise PlatformError(
                    self.name, f"port 127.0.0.1:{port} is taken by a process we did not start", fix
                )
            self.start(argv(), env, user)
        wait_until(answers, timeout, what, self)

    def stop(self, timeout: float = 20.0) -> bool:
        """Stop the process group we started (TERM, then KILL); return whether one was running."""
        pid = self.pid()
        self.pidfile.unlink(missing_ok=True)
        self._proc = None
        if pid is None:
            return False
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                return True
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if not _alive(pid):
                    return True
                time.sleep(0.1)  # bounded by timeout: polling a process we signalled
        return True

    def log_tail(self, lines: int = 15) -> str:
        """Return the last lines of the daemon's log, for error messages."""
        try:
            text = self.logfile.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
        threads = len(os.listdir(f"/proc/{pid}/task"))
    except (OSError, IndexError):
        return False
    # A multi-threaded program (any Go daemon) shows its main thread as a zombie while its other
    # threads still exit, holding its sockets: it is gone only when no other thread is left.
    return state != "Z" or threads > 1


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Return whether something accepts TCP connections on host:port (loopback only).

    The platform's ports lie in Linux's ephemeral range (32768-60999), so a connect to a port
    nobody listens on can be given that same port as its source and connect to itself (TCP
    simultaneous open): that is not a listener.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0 and not self_connected(sock)


def self_connected(sock: socket.socket) -> bool:
    """Whether a connected socket reached itself (its own address is its peer's)."""
    try:
        return sock.getsockname() == sock.getpeername()
    except OSError:
        return False


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, daemon: Daemon | None = None
) -> None:
    """Poll check() until it is true; on timeout raise PlatformError with the daemon's log tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        code = daemon.exited() if daemon is not None else None
        if daemon is not None and code is not None:
            how = f"exited with code {code}" if code >= 0 else "is no longer running"
            raise PlatformError(
                daemon.name, f"{how} while starting:\n{daemon.log_tail()}", f"see {daemon.logfile}"
            )
        time.sleep(0.25)  # bounded by timeout: a service we just started is not up yet
    name = daemon.name if daemon else what
    tail = f":\n{daemon.log_tail()}" if daemon else ""
    raise PlatformError(name, f"{what} not ready after {timeout:.0f}s{tail}", "see its log")


def run(argv: Sequence[str], component: str, fix: str = "", **kwargs: object) -> str:
    """Run a short command; return stdout, or raise PlatformError naming the component."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, check=False, **kwargs)
    except OSError as exc:
        raise PlatformError(component, f"cannot run {argv[0]}: {exc.strerror}", fix) from None
    if done.returncode != 0:
        err = (done.stderr or done.stdout).strip()[-2000:]
        raise PlatformError(component, f"`{' '.join(argv[:3])} ...` failed: {err}", fix)
    return done.stdout
