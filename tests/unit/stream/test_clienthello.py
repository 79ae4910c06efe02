"""The ClientHello reader: real hellos (OpenSSL's, through the stdlib and pyOpenSSL) however they are cut, and
every malformed shape ending in a verdict, never an exception (hypothesis fuzzes both)."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from OpenSSL import SSL

from gateway.stream.clienthello import PREREAD_BUFFER_SIZE, ClientHelloReader, Outcome
from gateway.tls.engine.session import TlsSession
from tests.fixtures.tls_peers import client_hello

stdlib_hello = client_hello


def engine_hello(server_name: str | None) -> bytes:
    """The first flight of the gateway's own TLS engine (pyOpenSSL), as an upstream connection sends it."""
    return TlsSession(SSL.Context(SSL.TLS_METHOD), server_side=False, server_hostname=server_name).start()


def record(content: bytes, kind: int = 0x16) -> bytes:
    return struct.pack("!BHH", kind, 0x0301, len(content)) + content


def hello_body(extensions: bytes | None, *, suites: bytes = b"\x13\x01", session_id: bytes = b"") -> bytes:
    body = b"\x03\x03" + b"\x00" * 32 + bytes([len(session_id)]) + session_id
    body += struct.pack("!H", len(suites)) + suites + b"\x01\x00"
    if extensions is not None:
        body += struct.pack("!H", len(extensions)) + extensions
    return body


def handshake(body: bytes, msg_type: int = 1) -> bytes:
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def extension(kind: int, data: bytes) -> bytes:
    return struct.pack("!HH", kind, len(data)) + data


def sni_extension(name: bytes, name_type: int = 0) -> bytes:
    entry = bytes([name_type]) + struct.pack("!H", len(name)) + name
    return extension(0, struct.pack("!H", len(entry)) + entry)


def reframe(message: bytes, size: int) -> bytes:
    """One handshake message cut over records of ``size`` bytes (TLS allows it; OpenSSL reassembles)."""
    return b"".join(record(message[i : i + size]) for i in range(0, len(message), size))


def read_all(data: bytes, step: int | None = None) -> tuple[Outcome, str | None, str]:
    reader = ClientHelloReader()
    verdict = None
    chunks = [data] if step is None else [data[i : i + step] for i in range(0, len(data), step)]
    for index, chunk in enumerate(chunks):
        verdict = reader.feed(chunk)
        if verdict.outcome is not Outcome.MORE:
            assert index == len(chunks) - 1 or step is not None
            break
    assert verdict is not None
    assert reader.buffered.startswith(data[: len(reader.buffered)])
    return verdict.outcome, verdict.sni, verdict.reason


def test_real_client_hellos_give_their_server_name() -> None:
    for make in (stdlib_hello, engine_hello):
        assert read_all(make("stream.example.test"))[:2] == (Outcome.HELLO, "stream.example.test")
        assert read_all(make(None))[:2] == (Outcome.HELLO, "")


def test_one_byte_at_a_time_is_the_same_hello_and_only_the_last_byte_decides() -> None:
    data = stdlib_hello("split.test")
    reader = ClientHelloReader()
    for i, byte in enumerate(data):
        verdict = reader.feed(bytes([byte]))
        assert (verdict.outcome is Outcome.MORE) == (i < len(data) - 1)
    assert verdict.sni == "split.test"
    assert reader.buffered == data


def test_a_hello_over_several_records_is_reassembled() -> None:
    message = stdlib_hello("records.test")[5:]
    for size in (1, 7, 64, 200):
        assert read_all(reframe(message, size))[:2] == (Outcome.HELLO, "records.test")
        assert read_all(reframe(message, size), step=3)[:2] == (Outcome.HELLO, "records.test")


def test_bytes_after_the_hello_are_kept_for_forwarding() -> None:
    data = stdlib_hello("keep.test") + b"early data"
    reader = ClientHelloReader()
    assert reader.feed(data).sni == "keep.test"
    reader.feed(b" and more")
    assert reader.buffered == data + b" and more"


def test_plain_text_and_sslv2_hellos() -> None:
    assert read_all(b"G")[0] is Outcome.NOT_TLS  # decided on the first byte: no wait for a record header
    assert read_all(b"GET / HTTP/1.1\r\n\r\n")[0] is Outcome.NOT_TLS
    assert read_all(b"\x16\x02\x00\x00\x05")[0] is Outcome.NOT_TLS  # not version 3
    sslv2 = b"\x80\x2e\x01\x03\x01" + b"\x00" * 45
    assert read_all(sslv2)[:2] == (Outcome.HELLO, "")


def test_a_hello_without_extensions_or_with_other_ones() -> None:
    assert read_all(record(handshake(hello_body(None))))[:2] == (Outcome.HELLO, "")
    exts = extension(10, b"\x00\x02\x00\x17") + sni_extension(b"late.test") + extension(16, b"\x00\x03\x02h2")
    assert read_all(record(handshake(hello_body(exts))))[:2] == (Outcome.HELLO, "late.test")


def test_malformed_hellos_are_named() -> None:
    cases = {
        "not a client hello": record(handshake(hello_body(None), msg_type=2)),
        "SNI hostname type is not DNS": record(handshake(hello_body(sni_extension(b"x.test", name_type=1)))),
        "SNI format error": record(handshake(hello_body(sni_extension(b"")))),
        "duplicate extension 0": record(handshake(hello_body(sni_extension(b"a.t") + sni_extension(b"b.t")))),
        "bad cipher_suites length": record(handshake(hello_body(None, suites=b"\x13"))),
        "session_id longer than 32 bytes": record(handshake(hello_body(None, session_id=b"s" * 33))),
        "truncated extension": record(handshake(hello_body(b"\x00\x00\x00\x09\x00"))),
        "bytes after the extensions": record(handshake(hello_body(b"") + b"xx")),
        "bad record length 0": b"\x16\x03\x01\x00\x00",
        "a record other than handshake inside the ClientHello": reframe(handshake(hello_body(None)), 10)[:15]
        + record(b"\x01", kind=0x15),
    }
    for reason, data in cases.items():
        assert read_all(data) == (Outcome.MALFORMED, None, reason), reason


def test_nul_in_a_server_name_is_malformed() -> None:
    assert read_all(record(handshake(hello_body(sni_extension(b"a\0b.test")))))[0] is Outcome.MALFORMED


def test_the_preread_buffer_bounds_an_unfinished_hello() -> None:
    message = handshake(hello_body(extension(21, b"\x00" * 4000)))  # padding: a 4 KiB hello
    data = reframe(message, 1)  # 6 bytes per byte of it: the buffer fills first
    outcome, _sni, reason = read_all(data, step=1024)
    assert (outcome, reason) == (Outcome.TOO_LARGE, "preread buffer full")
    assert len(data) > PREREAD_BUFFER_SIZE
    huge = record(b"\x01" + (PREREAD_BUFFER_SIZE + 1).to_bytes(3, "big"))
    assert read_all(huge)[0] is Outcome.MALFORMED


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_end_in_a_verdict_or_a_wait(data: bytes) -> None:
    verdict = ClientHelloReader().feed(data)
    assert verdict.outcome in set(Outcome)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_hellos_never_raise_and_cuts_never_change_the_verdict(data: st.DataObject) -> None:
    hello = bytearray(stdlib_hello("fuzz.test"))
    for _ in range(data.draw(st.integers(0, 4))):
        position = data.draw(st.integers(0, len(hello) - 1))
        hello[position] = data.draw(st.integers(0, 255))
    whole = ClientHelloReader().feed(bytes(hello))
    cuts = sorted(data.draw(st.lists(st.integers(1, len(hello) - 1), max_size=8, unique=True)))
    reader = ClientHelloReader()
    verdict = None
    start = 0
    for cut in [*cuts, len(hello)]:
        verdict = reader.feed(bytes(hello[start:cut]))
        start = cut
    assert verdict == whole
