"""Free loopback ports for servers that are started later by another process.

A port the kernel hands out for `bind(0)` comes from the ephemeral range, the same range every
outgoing connection draws from: between picking it and the server binding it, a client socket
may take it. Ports below that range are never handed to clients, so a free one stays free unless
another server takes it on purpose.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOWEST = 10_000
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ephemeral_start() -> int:
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def free_port(host: str = "127.0.0.1") -> int:
    """A port below the ephemeral range that nothing listens on now."""
    top = _ephemeral_start()
    if top <= LOWEST:  # an unusual kernel setting: no room below the range, let the kernel pick
        with socket.socket() as sock:
            sock.bind((host, 0))
            return int(sock.getsockname()[1])
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(LOWEST, top)
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port between {LOWEST} and {top} on {host}")
