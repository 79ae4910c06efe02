"""Free loopback ports, distinct within a process: the one helper the demo, the benchmarks and the tests share.

``bind(port 0)`` lets the kernel choose and the socket is closed before the caller binds, so nothing stops the
kernel from choosing the same port again for the next ``bind(0)``; CI once gave a gateway's plain and ``ssl``
proxy listeners one port (``address already in use`` at start). Remembering every port handed out in this process
makes ports drawn one after another distinct; the race with unrelated processes stays theoretical, as before.
"""

from __future__ import annotations

import socket
import threading
from typing import Final

__all__ = ["free_port"]

_ATTEMPTS: Final = 64
_given: set[int] = set()
_lock = threading.Lock()


def free_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` nothing listens on right now and that this process was never handed before."""
    with _lock:
        for _ in range(_ATTEMPTS):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((host, 0))
                port = int(sock.getsockname()[1])
            if port not in _given:
                _given.add(port)
                return port
    raise RuntimeError(f"no fresh loopback port on {host} after {_ATTEMPTS} tries")
