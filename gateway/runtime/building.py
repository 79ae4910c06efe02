"""What the master and the workers do the same way: load the ``ssl`` listeners' TLS inputs, build a snapshot from a
store export, bind a proxy listener, read the proxy counters. One implementation, called by both
(``gateway.runtime.lifecycle`` and ``gateway.runtime.worker``).
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.runtime.channel import Message
from gateway.settings import Listener, Settings

if TYPE_CHECKING:
    from gateway.observability.errorlog import ErrorLog
    from gateway.proxy.state import ProxyState
    from gateway.runtime.snapshot import Snapshot
    from gateway.store.interface import Config
    from gateway.tls.served.listener import ServerTlsConfig
    from gateway.tls.upstream.globals import UpstreamTlsGlobals

__all__ = [
    "COUNTERS",
    "ProtocolFactory",
    "add_counters",
    "bind_sockets",
    "build",
    "build_full",
    "ensure_free",
    "listen",
    "load_server_tls",
    "proxy_counters",
    "serve_sockets",
    "serves_traffic",
    "upstream_tls",
    "worker_count",
]

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

#: what a listener serves connections with (``ProxyState.protocol_factory(listener)``, ``StreamFront``'s)
ProtocolFactory = Callable[[], asyncio.BaseProtocol]


def worker_count(settings: Settings) -> int:
    """``worker_processes``: ``auto`` is the number of cores, as nginx's."""
    value = settings.worker_processes.strip().lower()
    if value == "auto":
        return max(1, os.cpu_count() or 1)
    return max(1, int(value))


def load_server_tls(settings: Settings, log: ErrorLog) -> ServerTlsConfig | None:
    """The ``ssl`` listeners' profile and default certificates (read or generated), or None without any."""
    from gateway.tls.served.listener import ServerTlsConfig, ssl_listeners

    if not ssl_listeners(settings):
        return None
    return ServerTlsConfig.load(settings, log)


def serves_traffic(settings: Settings) -> bool:
    """Whether this process proxies requests: the only process (``worker_processes = 1``), or a worker.

    With N > 1 the master serves no traffic (nginx's master): it builds only what it uses itself, the balancers its
    health checks probe. A worker is the process running ``gateway.runtime.worker`` (the zygote's children import it
    to run; the master never does), so a worker can never take itself for the master.
    """
    return worker_count(settings) == 1 or "gateway.runtime.worker" in sys.modules


#: the upstream TLS files of the settings in use (``UpstreamTlsGlobals``), kept until the settings change
_upstream_tls: tuple[Settings, UpstreamTlsGlobals] | None = None


def upstream_tls(settings: Settings) -> UpstreamTlsGlobals:
    """The global upstream trust stores and client certificate of ``settings``, read once per settings load (start,
    SIGHUP): a snapshot rebuild after an Admin API write reads no file, as ``ServerTlsConfig`` on the served side."""
    from gateway.tls.upstream.globals import UpstreamTlsGlobals

    global _upstream_tls
    cached = _upstream_tls
    if cached is None or cached[0] is not settings:
        cached = _upstream_tls = (settings, UpstreamTlsGlobals(settings))
    return cached[1]


def build(
    config: Config,
    settings: Settings,
    proxy_state: ProxyState | None,
    server_tls: ServerTlsConfig | None,
    log: ErrorLog,
) -> Snapshot:
    """The snapshot of ``config`` (a store export): reuses the current snapshot's compiled certificates, the
    ``ServerTlsConfig`` loaded at start or by the last SIGHUP and the upstream TLS files of the same settings; a
    master with workers builds only its balancers (``serves_traffic``)."""
    from gateway.runtime.snapshot import build_snapshot

    return build_snapshot(
        config,
        settings,
        previous=proxy_state.snapshot if proxy_state is not None else None,
        server_tls=server_tls,
        upstream_tls=upstream_tls(settings),
        proxy=serves_traffic(settings),
        log=log,
    )


def build_full(config: Config, settings: Settings, server_tls: ServerTlsConfig | None) -> Snapshot:
    """A snapshot of ``config`` with everything the proxy compiles, in any process (the master's ``/tls`` endpoints
    describe what its workers serve, ``gateway.runtime.tls_view``); its build errors are the workers' to log."""
    from gateway.runtime.snapshot import build_snapshot

    return build_snapshot(config, settings, server_tls=server_tls, upstream_tls=upstream_tls(settings), proxy=True)


async def listen(listener: Listener, factory: ProtocolFactory) -> asyncio.base_events.Server:
    """Bind one proxy listener of a single-process gateway (``SO_REUSEPORT`` when the listener asks for it)."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        factory,
        listener.host,
        listener.port,
        backlog=listener.backlog,
        reuse_port=listener.reuseport or None,
        reuse_address=True,
    )


def bind_sockets(listener: Listener) -> list[socket.socket]:
    """The listening sockets of one worker slot for ``listener`` (one per address it resolves to), bound with
    ``SO_REUSEPORT`` so that every slot has its own accept queue on the same port, as nginx's ``reuseport``.

    The master binds them and keeps them open for the life of the gateway; each worker gets its slot's sockets
    (``SCM_RIGHTS`` through the zygote). So a worker that dies or is replaced on SIGHUP leaves its queue to the next
    worker of that slot instead of the kernel resetting the connections waiting in it.
    """
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _name, address in socket.getaddrinfo(
            listener.host, listener.port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        ):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(listener.backlog)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


async def serve_sockets(
    listener: Listener, sockets: list[socket.socket], factory: ProtocolFactory
) -> list[asyncio.base_events.Server]:
    """A worker's servers on the listening sockets the master bound for its slot (``create_server`` calls
    ``listen`` again: with the listener's backlog, not its default of 100)."""
    loop = asyncio.get_running_loop()
    return [await loop.create_server(factory, sock=sock, backlog=listener.backlog) for sock in sockets]


def ensure_free(listener: Listener) -> None:
    """Raise ``OSError`` (``EADDRINUSE``) if anything already listens on ``listener``, as a plain bind would.

    The master calls it before it binds its workers' sockets with ``SO_REUSEPORT``, which alone would let a second
    gateway silently share the port. A listener that asks for ``reuseport`` itself is left to the kernel.
    """
    if listener.reuseport:
        return
    family = socket.AF_INET6 if ":" in listener.host else socket.AF_INET
    for info in socket.getaddrinfo(listener.host, listener.port, family, socket.SOCK_STREAM, 0, socket.AI_PASSIVE):
        with socket.socket(info[0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(info[4])


def proxy_counters(state: ProxyState | None) -> dict[str, int]:
    """This process's proxy counters (nginx ``stub_status``)."""
    if state is None:
        return {}
    return {name: int(getattr(state, name)) for name in COUNTERS}


def add_counters(totals: dict[str, int], reply: Message) -> None:
    """Add a worker's ``stats`` answer to ``totals`` (``GET /status``, ``/metrics``): the counters ``totals`` has, as
    integers; anything else in the answer is ignored (it is another process's data, not trusted)."""
    counters = reply.get("counters")
    if not isinstance(counters, dict):
        return
    for name, value in counters.items():
        if name in totals and isinstance(value, int):
            totals[name] += value
