"""Free TCP ports for the processes the tests start.

A port found free by binding to port 0 comes from Linux's ephemeral range
(32768-60999), where any outgoing connection may take it before the server binds
it. Ports are taken below that range instead, and checked free on the address the
server will bind.
"""

from __future__ import annotations

import random
import socket

_LOW, _HIGH = 20000, 32000


def free_port(host: str = "0.0.0.0") -> int:
    """A port free on ``host`` (all addresses by default), below the ephemeral range."""
    for _ in range(200):
        port = random.randrange(_LOW, _HIGH)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_LOW}-{_HIGH - 1} on {host}")
