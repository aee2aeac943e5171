"""The platform's port check: a connection that reached itself is not a listener."""

import socket

from sandbox.procs import port_open, self_connected


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_socket_connected_to_itself_is_seen_as_such() -> None:
    port = _free_port()
    with socket.socket() as sock:  # bound to the port it dials: TCP simultaneous open
        sock.bind(("127.0.0.1", port))
        assert sock.connect_ex(("127.0.0.1", port)) == 0
        assert self_connected(sock)
    assert not port_open(port)


def test_a_listener_is_open_and_its_client_is_not_self_connected() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert port_open(port)
        with socket.create_connection(("127.0.0.1", port), timeout=2) as client:
            assert not self_connected(client)
