"""Our response-header encoder (``http2.hpack_out``) decodes with the reference decoder, whatever the sizes."""

from __future__ import annotations

from hpack import Decoder

from gateway.downstream.http2.hpack_out import LiteralEncoder


def test_round_trip_through_hpack_with_no_dynamic_table() -> None:
    headers = [
        (b":status", b"200"),
        (b"content-type", b"application/json; charset=utf-8"),
        (b"content-length", b"123456"),
        (b"x-kong-request-id", b"0123456789abcdef0123456789abcdef"),
        (b"via", b"1.1 kong/3.9.1"),
        (b"x-long", b"v" * 5000),  # a length past the 7-bit prefix
        (b"x-" + b"n" * 200, b""),  # a name past it, an empty value
    ]
    encoder = LiteralEncoder()
    encoder.header_table_size = 1 << 30  # a client's permission changes nothing
    decoder = Decoder()
    decoder.max_header_list_size = 1 << 20
    for _ in range(3):  # the same each time: no state carried between blocks
        assert decoder.decode(encoder.encode(headers), raw=True) == headers
    assert len(decoder.header_table.dynamic_entries) == 0


def test_statuses_indexed_or_literal() -> None:
    encoder = LiteralEncoder()
    assert encoder.encode([(b":status", b"200")]) == b"\x88"
    assert encoder.encode([(b":status", b"404")]) == b"\x8d"
    assert Decoder().decode(encoder.encode([(b":status", b"101")]), raw=True) == [(b":status", b"101")]
    assert Decoder().decode(encoder.encode([(b":status", b"502")]), raw=True) == [(b":status", b"502")]
