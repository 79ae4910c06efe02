"""What the master and the workers do the same way: load the ``ssl`` listeners' TLS inputs, build a snapshot from a
store export, bind a proxy listener, read the proxy counters. One implementation, called by both
(``gateway.runtime.lifecycle`` and ``gateway.runtime.worker``).
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

from gateway.settings import Listener, Settings

__all__ = ["COUNTERS", "build", "ensure_free", "listen", "load_server_tls", "proxy_counters", "worker_count"]

#: nginx ``stub_status`` counters, as Kong's ``GET /status`` reports them under ``server``
COUNTERS = (
    "connections_accepted",
    "connections_active",
    "connections_handled",
    "connections_reading",
    "connections_waiting",
    "connections_writing",
    "total_requests",
)


def worker_count(settings: Settings) -> int:
    """``worker_processes``: ``auto`` is the number of cores, as nginx's."""
    value = settings.worker_processes.strip().lower()
    if value == "auto":
        return max(1, os.cpu_count() or 1)
    return max(1, int(value))


def load_server_tls(settings: Settings, log: Any) -> Any:
    """The ``ssl`` listeners' profile and default certificates (read or generated), or None without any."""
    from gateway.tls.listener import ServerTlsConfig, ssl_listeners

    if not ssl_listeners(settings):
        return None
    return ServerTlsConfig.load(settings, log)


def build(config: Any, settings: Settings, proxy_state: Any, server_tls: Any, log: Any) -> Any:
    """The snapshot of ``config`` (a store export): reuses the current snapshot's compiled certificates and the
    ``ServerTlsConfig`` loaded at start or by the last SIGHUP."""
    from gateway.runtime.snapshot import build_snapshot

    return build_snapshot(
        config,
        settings,
        previous=proxy_state.snapshot if proxy_state is not None else None,
        server_tls=server_tls,
        log=log,
    )


async def listen(listener: Listener, factory: Any, force_reuse_port: bool = False) -> asyncio.base_events.Server:
    """Bind one proxy listener (``SO_REUSEPORT`` when the listener asks for it or several processes share it)."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        factory,
        listener.host,
        listener.port,
        backlog=listener.backlog,
        reuse_port=(listener.reuseport or force_reuse_port) or None,
        reuse_address=True,
    )


def ensure_free(listener: Listener) -> None:
    """Raise ``OSError`` (``EADDRINUSE``) if anything already listens on ``listener``, as a plain bind would.

    The master calls it before its workers bind with ``SO_REUSEPORT``, which alone would let a second gateway
    silently share the port. A listener that asks for ``reuseport`` itself is left to the kernel.
    """
    if listener.reuseport:
        return
    family = socket.AF_INET6 if ":" in listener.host else socket.AF_INET
    for info in socket.getaddrinfo(listener.host, listener.port, family, socket.SOCK_STREAM, 0, socket.AI_PASSIVE):
        with socket.socket(info[0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(info[4])


def proxy_counters(state: Any) -> dict[str, int]:
    """This process's proxy counters (nginx ``stub_status``)."""
    if state is None:
        return {}
    return {name: int(getattr(state, name)) for name in COUNTERS}
