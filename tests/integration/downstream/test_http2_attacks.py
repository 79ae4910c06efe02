"""The HTTP/2 attack shapes (issue 16): each one ends the offending connection with GOAWAY and nginx's ``info``
line, and the gateway goes on serving another client (``_still_serving``).

The attacker is a raw client (``rawh2.RawH2``): it sends what a well-behaved library never would.
"""

from __future__ import annotations

import time

import pytest
from h2.errors import ErrorCodes
from hpack import Decoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from tests.integration.downstream.conftest import TIMEOUT, H2Setup, curl
from tests.integration.downstream.rawh2 import RawH2


def _still_serving(h2: H2Setup) -> None:
    out = curl("--http2", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", h2.url(h2.h2, "/"))
    assert out.stdout == "2 200", out.stderr


def _logged(h2: H2Setup, reason: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while reason not in h2.gw.error_log.read_text():
        assert time.monotonic() < deadline, f"no error-log line {reason!r}"
        time.sleep(0.05)
    line = next(ln for ln in h2.gw.error_log.read_text().splitlines() if reason in ln)
    assert "[info]" in line and "while processing HTTP/2 connection, client: 127.0.0.1" in line


@pytest.fixture
def attacker(h2: H2Setup) -> RawH2:
    return RawH2(h2.h2)


def test_rapid_reset_ends_the_connection(h2: H2Setup, attacker: RawH2) -> None:
    """CVE-2023-44487: streams opened and cancelled at once, batch after batch, until the reset limit."""
    sid = 1
    for batch in range(6):
        frames: list[Frame] = []
        for _ in range(64):
            frames += [attacker.request(sid, end_stream=False), RstStreamFrame(sid, error_code=ErrorCodes.CANCEL)]
            sid += 2
        attacker.send(frames)
        if batch < 3:
            attacker.ping_pong(b"batch%03d" % batch)  # below the limit: served, separate reads
    assert attacker.goaway().error_code == ErrorCodes.ENHANCE_YOUR_CALM
    _logged(h2, "client sent too many stream resets")
    _still_serving(h2)
    # each abandoned stream is nginx's 499 in the access log (flushed once a second)
    deadline = time.monotonic() + TIMEOUT
    while h2.gw.access_log.read_text().count('"GET / HTTP/2.0" 499 0 ') < 256:
        assert time.monotonic() < deadline, "the resets never reached the access log as 499"
        time.sleep(0.05)
    assert '"GET / HTTP/2.0" 0 ' not in h2.gw.access_log.read_text()


def test_too_many_streams_in_one_read(h2: H2Setup, attacker: RawH2) -> None:
    frames = [attacker.request(sid) for sid in range(1, 2 * 300, 2)]
    attacker.send(frames)
    assert attacker.goaway().error_code in (ErrorCodes.ENHANCE_YOUR_CALM, ErrorCodes.PROTOCOL_ERROR)
    _still_serving(h2)


def test_continuation_flood(h2: H2Setup, attacker: RawH2) -> None:
    first = HeadersFrame(1)
    first.data = attacker.block()[:1]
    frames: list[Frame] = [first]
    for _ in range(200):
        cont = ContinuationFrame(1)
        cont.data = b""
        frames.append(cont)
    attacker.send(frames)
    assert attacker.goaway().error_code == ErrorCodes.PROTOCOL_ERROR
    _logged(h2, "Too many continuation frames received")
    _still_serving(h2)


def test_settings_flood(h2: H2Setup, attacker: RawH2) -> None:
    attacker.send([SettingsFrame(0) for _ in range(200)])
    assert attacker.goaway().error_code == ErrorCodes.ENHANCE_YOUR_CALM
    _logged(h2, "client sent too many SETTINGS frames")
    _still_serving(h2)


def test_ping_flood(h2: H2Setup, attacker: RawH2) -> None:
    pings = []
    for i in range(200):
        ping = PingFrame(0)
        ping.opaque_data = b"%08d" % i
        pings.append(ping)
    attacker.send(pings)
    assert attacker.goaway().error_code == ErrorCodes.ENHANCE_YOUR_CALM
    _logged(h2, "client sent too many PING frames")
    _still_serving(h2)


def test_hpack_table_size_update_beyond_our_setting(h2: H2Setup, attacker: RawH2) -> None:
    """The client's encoder may not grow our decoder's table past the 4096 bytes we allow: COMPRESSION_ERROR."""
    attacker.encoder.header_table_size = 1 << 20  # the next block starts with a size update to 1 MiB
    attacker.send([attacker.request(1)])
    assert attacker.goaway().error_code == ErrorCodes.COMPRESSION_ERROR
    _still_serving(h2)


def test_our_encoder_table_stays_small_whatever_the_client_allows(h2: H2Setup) -> None:
    """A client allowing a 1 GiB table would have us keep every distinct response header (each request id): we
    stay at 4096 bytes, so a decoder that allows no more decodes all our responses."""
    client = RawH2(h2.h2, settings={SettingsFrame.HEADER_TABLE_SIZE: 1 << 30})
    decoder = Decoder()
    decoder.max_allowed_table_size = 4096
    try:
        client.send([client.request(sid) for sid in (1, 3, 5)])
        seen = 0
        while seen < 3:
            frame = client.next_frame()
            assert frame is not None
            if isinstance(frame, HeadersFrame):
                headers = dict(decoder.decode(frame.data, raw=True))
                assert headers[b":status"] == b"200"
                seen += 1
    finally:
        client.close()


def test_header_list_beyond_the_limit(h2: H2Setup, attacker: RawH2) -> None:
    block = attacker.block(extra=[("x-big", "a" * 40_000)])
    first = HeadersFrame(1)
    first.data = block[:16_000]
    frames: list[Frame] = [first]
    for at in range(16_000, len(block), 16_000):
        cont = ContinuationFrame(1)
        cont.data = block[at : at + 16_000]
        if at + 16_000 >= len(block):
            cont.flags.add("END_HEADERS")
        frames.append(cont)
    attacker.send(frames)
    assert attacker.goaway().error_code == ErrorCodes.ENHANCE_YOUR_CALM
    _still_serving(h2)


def test_window_update_overflow(h2: H2Setup, attacker: RawH2) -> None:
    attacker.send([WindowUpdateFrame(0, window_increment=2**31 - 1)])
    assert attacker.goaway().error_code == ErrorCodes.FLOW_CONTROL_ERROR
    _still_serving(h2)


def test_data_beyond_the_granted_window(h2: H2Setup, attacker: RawH2) -> None:
    frames: list[Frame] = [attacker.request(1, "/echo", end_stream=False)]
    for _ in range(6):  # 6 x 16 KiB > the 64 KiB - 1 initial window
        data = DataFrame(1)
        data.data = b"x" * 16_384
        frames.append(data)
    attacker.send(frames)
    assert attacker.goaway().error_code == ErrorCodes.FLOW_CONTROL_ERROR
    _still_serving(h2)


def test_a_refused_head_is_answered_on_its_stream_and_the_connection_goes_on(h2: H2Setup, attacker: RawH2) -> None:
    """nginx's 400 for a header line longer than a large_client_header_buffers buffer, on that stream only."""
    big = HeadersFrame(1)
    big.data = attacker.block("/", extra=[("x-long", "v" * 9000)])  # > 8k line, < 32k list
    big.flags.add("END_HEADERS")
    big.flags.add("END_STREAM")
    attacker.send([big])
    assert attacker.status_of(1) == b"400"
    attacker.send([attacker.request(3)])
    assert attacker.status_of(3) == b"200"
    attacker.close()
