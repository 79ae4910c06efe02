"""The ``stream_listen`` entries of one process: their protocol factories and, for ``ssl`` ones, the TLS context.

An ``ssl`` stream listener serves the certificates of the proxy listeners by the same rules, because it is built
from the same parts (``gateway.tls.served``): the snapshot's ``CertificateIndex`` (one index: Kong's exact, ``*.x``,
``x.*``, ``*`` entity, default order), the same base-context builder (``ssl_protocols``, ``ssl_cipher_suite``,
tickets, session cache) and the same servername callback, here *without* the certificate phase: mtls-auth's
client-certificate request does not apply to stream routes, as in Kong, whose stream server block asks for no
client certificate. In a worker process the context is built on a blank one inherited from the zygote
(``ticket_keys``), after the proxy listeners' ones, so every worker shares the stream listeners' ticket keys too.

``refresh()`` (SIGHUP) rebuilds the contexts from the current snapshot, as the proxy listeners' are rebuilt.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from OpenSSL import SSL

from gateway.stream.session import StreamSession
from gateway.tls.served import ticket_keys
from gateway.tls.served.certificates import CertificateIndex, base_context, make_sni_callback

if TYPE_CHECKING:
    from gateway.proxy.state import ProxyState
    from gateway.settings import Listener

__all__ = ["StreamFront", "StreamListener"]


class StreamListener:
    """One ``stream_listen`` entry: what its sessions share."""

    __slots__ = ("_fallback", "context", "listener", "server_addr", "ssl", "state")

    def __init__(self, state: ProxyState, listener: Listener, position: int | None = None) -> None:
        self.state = state
        self.listener = listener
        self.ssl = listener.ssl
        host = f"[{listener.host}]" if ":" in listener.host else listener.host
        #: nginx's ``server:`` log field (the listen address as configured)
        self.server_addr = f"{host}:{listener.port}"
        self._fallback: CertificateIndex | None = None
        self.context: SSL.Context | None = None
        if self.ssl:
            index = state.snapshot.certificates
            if index is None:
                raise RuntimeError("the snapshot has no certificate index: build it with an ssl listener configured")
            self._fallback = cast(CertificateIndex, index)
            blank = ticket_keys.take(position) if position is not None else None
            self.context = self._new_context(self._fallback, blank)

    def _current_index(self) -> CertificateIndex:
        index = self.state.snapshot.certificates
        if index is None:
            assert self._fallback is not None
            return self._fallback
        return cast(CertificateIndex, index)

    def _new_context(self, index: CertificateIndex, blank: SSL.Context | None = None) -> SSL.Context:
        callback = make_sni_callback(self._current_index, self.state.error_log, certificate_phase=None)
        return base_context(None, index, sni_callback=callback, blank=blank)

    def refresh(self) -> None:
        if self.ssl:
            index = self._current_index()
            self._fallback = index
            self.context = self._new_context(index)

    def next_conn_id(self) -> int:
        return self.state.next_conn_id()

    def protocol_factory(self) -> StreamSession:
        """For ``loop.create_server``: one session per accepted socket."""
        return StreamSession(self)


class StreamFront:
    """Every stream listener of a process (see the module docstring)."""

    __slots__ = ("_next_position", "listeners", "state")

    def __init__(self, state: ProxyState) -> None:
        self.state = state
        self.listeners: list[StreamListener] = []
        #: the first blank context that is ours: the proxy's ``ssl`` listeners took theirs first
        self._next_position = len(state.tls_listeners)

    def protocol_factory(self, listener: Listener) -> Callable[[], asyncio.Protocol]:
        position = None
        if listener.ssl:
            position = self._next_position
            self._next_position += 1
        stream = StreamListener(self.state, listener, position)
        self.listeners.append(stream)
        return stream.protocol_factory

    def refresh_tls(self) -> None:
        for listener in self.listeners:
            listener.refresh()
