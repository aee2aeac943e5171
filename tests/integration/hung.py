"""A loopback TCP relay that can turn into a server that accepts and never answers.

Not a fake of any service: it relays bytes to a real one (the apiserver, Prometheus) until the test
calls `hang()`; from then on every connection, old or new, is held open and never answered, as a
wedged server or a black-holing load balancer does.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sandbox.settings import HOST


class HangingRelay:
    """Relay 127.0.0.1:<port> to `upstream` (host, port); `hang()` stops every answer for good.

    With upstream None it never answers from the start.
    """

    def __init__(self, upstream: tuple[str, int] | None = None) -> None:
        self.upstream = upstream
        self.hung = threading.Event()
        if upstream is None:
            self.hung.set()
        self.closed = threading.Event()
        self.listener = socket.create_server((HOST, 0))
        self.port = self.listener.getsockname()[1]
        self.address = f"{HOST}:{self.port}"
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def hang(self) -> None:
        """From now on nothing is relayed: every call waits until its own timeout."""
        self.hung.set()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.sockets.append(conn)
            if self.hung.is_set():
                continue  # accepted, held open, never answered
            upstream = socket.create_connection(self.upstream, timeout=10)
            self.sockets.append(upstream)
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        src.settimeout(0.5)
        while not self.closed.is_set():
            try:
                data = src.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            while self.hung.is_set() and not self.closed.is_set():
                self.closed.wait(0.5)  # hold the bytes: the peer waits for an answer forever
            try:
                dst.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        """Stop relaying and close every socket."""
        self.closed.set()
        self.listener.close()
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.close()


@contextmanager
def relay(upstream: tuple[str, int] | None = None) -> Iterator[HangingRelay]:
    """A HangingRelay for the duration of a with-block."""
    r = HangingRelay(upstream)
    try:
        yield r
    finally:
        r.close()
