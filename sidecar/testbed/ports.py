"""Loopback ports for test-bed servers."""

from __future__ import annotations

import errno
import socket

from sidecar.testbed.errors import PortInUseError

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A port that is free on loopback right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def require_free_port(port: int, what: str) -> int:
    """Return ``port`` if nothing listens on it, else raise a PortInUseError naming ``what``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers bind: connections of a server just stopped (TIME_WAIT) do not make its
        # port busy, a listener does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise PortInUseError(
                f"{what}: port {port} on {LOOPBACK} is already in use. Stop whatever listens "
                f"there (`ss -ltnp 'sport = :{port}'` shows it; `rerank-sidecar testbed down` "
                "stops an earlier test bed), or leave the port unset to get a free one."
            ) from None
    return port


def pick_port(port: int | None, what: str) -> int:
    """The configured port if it is free, or a free one when none is configured."""
    return free_port() if port is None else require_free_port(port, what)
