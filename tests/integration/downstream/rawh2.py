"""A raw HTTP/2 client for the tests: TLS with ALPN ``h2`` from Python's ``ssl``, frames built with ``hyperframe``
and header blocks with ``hpack`` (both come with ``h2``), so that a test can send what a well-behaved library never
would, and read the server's frames one by one."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterable

from hpack import Decoder, Encoder
from hyperframe.frame import Frame, GoAwayFrame, HeadersFrame, PingFrame, SettingsFrame

from tests.integration.downstream.conftest import TIMEOUT

__all__ = ["PREFACE", "RawH2"]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class RawH2:
    """A TLS connection speaking HTTP/2 frame by frame."""

    def __init__(self, port: int, settings: dict[int, int] | None = None) -> None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        assert self.sock.selected_alpn_protocol() == "h2"
        self.encoder = Encoder()
        self.decoder = Decoder()
        self.buffer = b""
        first = SettingsFrame(0)
        first.settings = settings or {}
        self.send_raw(PREFACE + first.serialize())

    def block(self, path: str = "/", extra: Iterable[tuple[str, str]] = ()) -> bytes:
        return self.encoder.encode(
            [(":method", "GET"), (":scheme", "https"), (":authority", "localhost"), (":path", path), *extra]
        )

    def request(self, sid: int, path: str = "/", end_stream: bool = True) -> HeadersFrame:
        frame = HeadersFrame(sid)
        frame.data = self.block(path)
        frame.flags.add("END_HEADERS")
        if end_stream:
            frame.flags.add("END_STREAM")
        return frame

    def send(self, frames: Iterable[Frame]) -> None:
        """Send the frames; a server that ends the connection mid-way (GOAWAY then close, as it should for an attack
        it sees in the first frames) stops the sending, and the test reads what the server said before closing."""
        try:
            self.sock.sendall(b"".join(f.serialize() for f in frames))
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError, BrokenPipeError, ConnectionResetError):
            pass

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def next_frame(self) -> Frame | None:
        """The next frame, or None once the server closed."""
        while True:
            if len(self.buffer) >= 9:
                frame, length = Frame.parse_frame_header(memoryview(self.buffer[:9]))
                if len(self.buffer) >= 9 + length:
                    frame.parse_body(memoryview(self.buffer[9 : 9 + length]))
                    self.buffer = self.buffer[9 + length :]
                    return frame
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                return None
            if not chunk:
                return None
            self.buffer += chunk

    def goaway(self) -> GoAwayFrame:
        """Read until the server's GOAWAY (failing if it closes without one), then expect the close."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            frame = self.next_frame()
            assert frame is not None, "closed without GOAWAY"
            if isinstance(frame, GoAwayFrame):
                assert self.next_frame() is None, "the connection stayed open after GOAWAY"
                return frame
        raise AssertionError("no GOAWAY")

    def ping_pong(self, opaque: bytes) -> None:
        """Send a PING and read until its ACK: everything sent before it was processed."""
        ping = PingFrame(0)
        ping.opaque_data = opaque
        self.send([ping])
        while True:
            frame = self.next_frame()
            assert frame is not None, "closed before the PING ACK"
            if isinstance(frame, PingFrame) and "ACK" in frame.flags and frame.opaque_data == opaque:
                return

    def status_of(self, sid: int) -> bytes:
        """Read until the response HEADERS of stream ``sid``: its ``:status``."""
        while True:
            frame = self.next_frame()
            assert frame is not None, "closed before the response"
            if isinstance(frame, HeadersFrame):
                headers = dict(self.decoder.decode(frame.data, raw=True))
                if frame.stream_id == sid:
                    return headers[b":status"]

    def close(self) -> None:
        self.sock.close()
