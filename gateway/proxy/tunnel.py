"""Bytes both ways between two transports until either side closes: an upgraded (WebSocket) connection.

Theory of operation. Once the upstream's 101 is relayed, HTTP is over on both connections: the tunnel takes each
transport over with ``set_protocol`` (the client's, plain or TLS, and the upstream's, plain or TLS with the
service's full upstream TLS profile, already established), so neither the HTTP/1.1 parser nor the upstream
response parser sees another byte, and no per-read check was added to them.

Rules:

1. What one side sends is written to the other as it comes; when a side's transport cannot take more
   (``pause_writing``), the other side's reading pauses until it can (backpressure both ways).
2. Either side's EOF or loss closes both (WebSocket closes in-band; nginx closes the upgraded pair when one ends).
3. One timer handle (lesson 10) for two deadlines: no byte in either direction for the service's ``read_timeout``,
   or a side that cannot take what we write for its ``write_timeout``, ends the tunnel with nginx's line
   ``upstream timed out (110: Connection timed out) while proxying upgraded connection`` (``client timed out`` when
   the client is the one not reading).
4. The client side's end is reported once (``on_client_lost``): the HTTP connection writes the request's access
   line (status 101, the bytes sent to the client) and leaves the process's books.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["Tunnel"]


class _Side(asyncio.Protocol):
    """One transport's protocol inside the tunnel."""

    __slots__ = ("_tunnel", "_upstream")

    def __init__(self, tunnel: Tunnel, upstream: bool) -> None:
        self._tunnel = tunnel
        self._upstream = upstream

    def data_received(self, data: bytes) -> None:
        self._tunnel.relay(data, from_upstream=self._upstream)

    def eof_received(self) -> bool | None:
        self._tunnel.close()
        return False

    def pause_writing(self) -> None:
        self._tunnel.pause_source(of_upstream=self._upstream)

    def resume_writing(self) -> None:
        self._tunnel.resume_source(of_upstream=self._upstream)

    def connection_lost(self, exc: Exception | None) -> None:
        self._tunnel.side_lost(upstream=self._upstream, exc=exc)


class Tunnel:
    """Two established transports joined (see the module docstring).

    Args:
        client: the downstream transport (after the 101 was written to it).
        upstream: the upstream transport (after its 101 was read).
        idle_timeout, write_timeout: rule 3, seconds.
        on_client_lost: rule 4, called once with the client transport's loss (exception or None).
        on_timeout: rule 3, called with ``"client"`` or ``"upstream"`` (who timed out) before the tunnel closes.
    """

    __slots__ = (
        "_client",
        "_deadline",
        "_idle_timeout",
        "_loop",
        "_on_client_lost",
        "_on_timeout",
        "_stalls",
        "_timer",
        "_upstream",
        "_write_timeout",
        "bytes_down",
        "bytes_up",
        "closed",
    )

    def __init__(
        self,
        client: asyncio.Transport,
        upstream: asyncio.Transport,
        idle_timeout: float,
        write_timeout: float,
        on_client_lost: Callable[[Exception | None], None],
        on_timeout: Callable[[str], None],
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._client = client
        self._upstream = upstream
        self._idle_timeout = idle_timeout
        self._on_client_lost: Callable[[Exception | None], None] | None = on_client_lost
        self._on_timeout = on_timeout
        self._deadline = 0.0
        self._write_timeout = write_timeout
        #: the sides that cannot take more (``"client"``/``"upstream"``), each with until when it may stay so
        self._stalls: dict[str, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        #: bytes written to the client / to the upstream
        self.bytes_down = 0
        self.bytes_up = 0
        self.closed = False

    def start(self) -> None:
        """Take both transports over."""
        self._client.set_protocol(_Side(self, upstream=False))
        self._upstream.set_protocol(_Side(self, upstream=True))
        self._touch()

    # -- rules 1 and 3 ------------------------------------------------------------------------------------------
    def relay(self, data: bytes, from_upstream: bool) -> None:
        if self.closed:
            return
        if from_upstream:
            self.bytes_down += len(data)
            self._client.write(data)
        else:
            self.bytes_up += len(data)
            self._upstream.write(data)
        self._deadline = self._loop.time() + self._idle_timeout

    def pause_source(self, of_upstream: bool) -> None:
        """The side ``of_upstream`` names cannot take more: stop reading the other (for ``write_timeout`` at most)."""
        source = self._client if of_upstream else self._upstream
        if not self.closed and not source.is_closing():
            source.pause_reading()
            deadline = self._loop.time() + self._write_timeout
            self._stalls["upstream" if of_upstream else "client"] = deadline
            self._arm(deadline)

    def resume_source(self, of_upstream: bool) -> None:
        source = self._client if of_upstream else self._upstream
        self._stalls.pop("upstream" if of_upstream else "client", None)
        if not self.closed and not source.is_closing():
            source.resume_reading()

    def _touch(self) -> None:
        self._deadline = self._loop.time() + self._idle_timeout
        self._arm(self._deadline)

    def _arm(self, when: float) -> None:
        """The one handle fires no later than ``when`` (replaced only when it would fire after it)."""
        timer = self._timer
        if timer is None or timer.when() > when:
            if timer is not None:
                timer.cancel()
            self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.closed:
            return
        now = self._loop.time()
        for side, deadline in self._stalls.items():
            if now >= deadline:
                self._on_timeout(side)
                self.close(abort=True)
                return
        if now >= self._deadline:
            self._on_timeout("upstream")
            self.close(abort=True)
            return
        self._arm(min([self._deadline, *self._stalls.values()]))

    # -- rules 2 and 4 ------------------------------------------------------------------------------------------
    def close(self, abort: bool = False) -> None:
        """Close both sides: flushing what is buffered, or at once (``abort``: a timeout, where a side that does not
        read would keep a flushing close open for ever)."""
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for transport in (self._upstream, self._client):
            if abort:
                transport.abort()
            elif not transport.is_closing():
                transport.close()

    def side_lost(self, upstream: bool, exc: Exception | None) -> None:
        self.close()
        if not upstream:
            report = self._on_client_lost
            self._on_client_lost = None
            if report is not None:
                report(exc)
