"""TlsSession in memory: a server session against a client session (or a stdlib ssl.MemoryBIO peer)."""

from __future__ import annotations

import ssl

import pytest
from OpenSSL import SSL

from gateway.tls.engine.errors import TlsHandshakeError, TlsLocalError, TlsRemoteError
from gateway.tls.engine.session import TlsSession
from gateway.tls.engine.verify_codes import RECORD_AND_ENFORCE
from tests.fixtures.certs import days, make_ca, make_cert
from tests.fixtures.tls_peers import client_context, pump, server_context


@pytest.fixture(scope="module")
def pki():
    root = make_ca("Test Root", key_type="ec")
    inter = make_ca("Test Intermediate", root, key_type="ec")
    server = make_cert("example.test", inter, key_type="ec", sans=["example.test", "*.wild.test"])
    return root, inter, server


VERSIONS = [(SSL.TLS1_2_VERSION, "TLSv1.2"), (SSL.TLS1_3_VERSION, "TLSv1.3")]


@pytest.mark.parametrize(("max_version", "name"), VERSIONS)
def test_handshake_fields_both_versions(pki, max_version, name):
    root, _, server_id = pki
    sctx = server_context(server_id, alpn=[b"http/1.1"], max_version=max_version)
    server = TlsSession(sctx, server_side=True)
    client = TlsSession(
        client_context([root]),
        server_side=False,
        server_hostname="example.test",
        alpn_protocols=["h2", "http/1.1"],
        verify=True,
        verify_hostname="example.test",
    )
    pump(client, server)
    for side in (server, client):
        assert side.established
        assert side.version == name
        assert side.sni == "example.test"
        assert side.alpn == "http/1.1"
        assert side.cipher
        assert side.verify_code == 0
        assert not side.session_reused
    info = server.info
    assert info is not None and info.sni == "example.test" and info.server_side
    # The client sees the server's chain, leaf first, without the root.
    assert [c.subject for c in client.peer_chain] == [c.subject for c in server_id.chain]
    assert server.peer_chain == []  # no client certificate requested


def test_no_sni_is_none(pki):
    root, _, server_id = pki
    server = TlsSession(server_context(server_id), server_side=True)
    client = TlsSession(client_context([root]), server_side=False, server_hostname=None)
    pump(client, server)
    assert server.sni is None and client.sni is None and server.alpn is None


def _pair(pki, **client_kwargs):
    root, _, server_id = pki
    server = TlsSession(server_context(server_id), server_side=True)
    client = TlsSession(client_context([root]), server_side=False, server_hostname="example.test", **client_kwargs)
    pump(client, server)
    return client, server


def test_data_is_batched_and_records_may_split(pki):
    client, server = _pair(pki)
    wire = client.send(b"one ") + client.send(b"two ") + client.send(b"three")
    plaintext, to_send, closed = server.receive(wire)
    assert (plaintext, to_send, closed) == (b"one two three", b"", False)
    # Byte-by-byte delivery of two records: plaintext appears exactly when each record completes.
    wire = client.send(b"hello") + client.send(b"world")
    got = [server.receive(wire[i : i + 1])[0] for i in range(len(wire))]
    assert b"".join(got) == b"helloworld"
    assert [g for g in got if g] == [b"hello", b"world"]


def test_a_record_and_a_half_in_one_receive(pki):
    # The data path's one-record shortcut must not strand what follows the first record in the incoming BIO.
    client, server = _pair(pki)
    first, second = client.send(b"first"), client.send(b"second")
    half = len(second) // 2
    assert server.receive(first + second[:half]) == (b"first", b"", False)
    assert server.receive(second[half:]) == (b"second", b"", False)
    # and a lone partial record gives nothing yet, without an error
    third = client.send(b"third")
    assert server.receive(third[:3]) == (b"", b"", False)
    assert server.receive(third[3:]) == (b"third", b"", False)


def test_data_then_close_notify_in_one_receive(pki):
    client, server = _pair(pki)
    assert server.receive(client.send(b"last words") + client.close()) == (b"last words", b"", True)
    assert server.close_notify_received
    assert server.receive(b"late") == (b"", b"", True)  # closed: nothing more is read


def test_a_tampered_record_after_a_good_one_in_one_receive(pki):
    client, server = _pair(pki)
    good = client.send(b"good")
    bad = bytearray(client.send(b"bad"))
    bad[-1] ^= 0xFF
    with pytest.raises(TlsRemoteError) as info:
        server.receive(good + bytes(bad))
    assert server.errored
    with pytest.raises(TlsRemoteError) as alert:  # the fatal alert OpenSSL wrote reaches the client as one
        client.receive(info.value.to_send)
    assert "bad record mac" in alert.value.reason
    with pytest.raises(TlsLocalError):
        server.send(b"x")


def test_large_transfer_both_ways(pki):
    client, server = _pair(pki)
    blob = bytes(range(256)) * 8192  # 2 MiB: many records, several outgoing BIO reads
    wire = client.send(blob)
    assert len(wire) > len(blob)
    received = bytearray()
    for i in range(0, len(wire), 70000):
        received += server.receive(wire[i : i + 70000])[0]
    assert received == blob
    wire = server.send_many([blob, b"tail"])
    assert client.receive(wire)[0] == blob + b"tail"


def test_close_notify_both_ways(pki):
    client, server = _pair(pki)
    notify = client.close()
    assert notify
    assert client.close() == b""  # idempotent
    plaintext, _, closed = server.receive(notify)
    assert (plaintext, closed) == (b"", True)
    assert server.close_notify_received
    # The server may still answer (TLS 1.3 half-close) and then close.
    answer = server.send(b"bye") + server.close()
    plaintext, _, closed = client.receive(answer)
    assert (plaintext, closed) == (b"bye", True)
    assert client.close_notify_received
    with pytest.raises(TlsLocalError):
        client.send(b"after close")


def test_eof_after_handshake_is_a_normal_end(pki):
    _client, server = _pair(pki)
    assert server.receive(b"") == (b"", b"", True)
    assert not server.close_notify_received
    assert not server.errored


def test_eof_mid_handshake(pki):
    _, _, server_id = pki
    server = TlsSession(server_context(server_id), server_side=True)
    client = TlsSession(client_context(), server_side=False, server_hostname="example.test")
    server.receive(client.start())
    with pytest.raises(TlsHandshakeError) as info:
        server.receive_eof()
    assert info.value.kind == "eof"
    with pytest.raises(TlsLocalError):
        server.receive(b"more")


def test_garbage_is_a_handshake_error_then_fail_fast(pki):
    _, _, server_id = pki
    server = TlsSession(server_context(server_id), server_side=True)
    with pytest.raises(TlsHandshakeError) as info:
        server.receive(b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n")
    assert info.value.kind == "protocol"
    assert info.value.verify_code is None
    assert isinstance(info.value, TlsRemoteError)
    assert server.errored and not server.established
    with pytest.raises(TlsLocalError):
        server.receive(b"\x16\x03\x01")
    with pytest.raises(TlsLocalError):
        server.send(b"x")


def test_send_before_handshake_is_local_error(pki):
    _, _, server_id = pki
    server = TlsSession(server_context(server_id), server_side=True)
    with pytest.raises(TlsLocalError):
        server.send(b"too early")
    with pytest.raises(TlsLocalError):
        server.start()


def test_tampered_record_is_remote_error(pki):
    client, server = _pair(pki)
    wire = bytearray(client.send(b"secret"))
    wire[-1] ^= 0xFF
    with pytest.raises(TlsRemoteError) as info:
        server.receive(bytes(wire))
    assert info.value.to_send  # the fatal alert to write
    assert server.errored


@pytest.mark.parametrize("max_version", [SSL.TLS1_2_VERSION, SSL.TLS1_3_VERSION])
def test_server_side_peer_chain_has_leaf_first(pki, max_version):
    root, inter, server_id = pki
    client_id = make_cert("client.test", inter, key_type="ec")
    server = TlsSession(server_context(server_id, request_client_cert=True, max_version=max_version), server_side=True)
    client = TlsSession(client_context([root], identity=client_id), server_side=False, server_hostname="example.test")
    pump(client, server)
    chain = server.peer_chain
    assert [c.subject for c in chain] == [client_id.cert.subject, inter.cert.subject]
    assert chain[0] == client_id.cert
    assert server.info is not None and server.info.peer_certificate == client_id.cert
    # Nothing in the server's (empty) store: the request was permissive, the errors are recorded.
    assert server.verify_code == 20


# -- verification results through a real handshake -----------------------------------------------------------


def _verify_case(identity, trusted, depth=None, recorder=None, verify=True, hostname=None):
    server = TlsSession(server_context(identity), server_side=True)
    kwargs = {} if recorder is None else {"recorder": recorder}
    client = TlsSession(
        client_context(trusted, depth=depth, **kwargs),
        server_side=False,
        server_hostname="leaf.test",
        verify=verify,
        verify_hostname=hostname,
    )
    return client, server


def _cases():
    root = make_ca("Root", key_type="ec")
    int1 = make_ca("Int 1", root, key_type="ec")
    int2 = make_ca("Int 2", int1, key_type="ec")
    other = make_ca("Unrelated Root", key_type="ec")
    return {
        "lone_leaf_unknown_issuer": (make_cert("leaf.test", root, key_type="ec"), [other], None, 21, 0),
        "untrusted_root": (make_cert("leaf.test", int1, key_type="ec"), [other], None, 20, 1),
        "depth_exceeded": (make_cert("leaf.test", int2, key_type="ec"), [root], 1, 22, 2),
        "self_signed": (make_cert("leaf.test", None, key_type="ec"), [root], None, 18, 0),
        "expired": (
            make_cert("leaf.test", root, key_type="ec", not_before=days(-10), not_after=days(-1)),
            [root],
            None,
            10,
            0,
        ),
    }


CASES = _cases()


@pytest.mark.parametrize("case", sorted(CASES))
def test_verify_failure_codes(case):
    identity, trusted, depth, code, err_depth = CASES[case]
    client, server = _verify_case(identity, trusted, depth)
    with pytest.raises(TlsHandshakeError) as info:
        pump(client, server)
    exc = info.value
    assert (exc.kind, exc.verify_code, exc.verify_depth) == ("verify", code, err_depth)
    assert exc.verify_text is not None and exc.verify_text.startswith(f"{code}:")
    assert client.errored and not client.established


def test_depth_two_accepts_the_long_chain():
    identity, trusted, _, _, _ = CASES["depth_exceeded"]
    client, server = _verify_case(identity, trusted, depth=2)
    pump(client, server)
    assert client.established and client.verify_code == 0


@pytest.mark.parametrize("case", sorted(CASES))
def test_verify_off_completes_and_still_records(case):
    identity, trusted, depth, code, err_depth = CASES[case]
    client, server = _verify_case(identity, trusted, depth, verify=False)
    pump(client, server)
    assert client.established
    assert (client.verify_code, client.verify_depth) == (code, err_depth)
    assert client.info is not None and client.info.verify_code == code


def test_enforcing_callback_fails_inside_the_handshake():
    identity, trusted, _, _, _ = CASES["lone_leaf_unknown_issuer"]
    client, server = _verify_case(identity, trusted, recorder=RECORD_AND_ENFORCE, verify=False)
    with pytest.raises(TlsHandshakeError) as info:
        pump(client, server)
    # OpenSSL stops at the first error when the callback refuses it.
    assert (info.value.kind, info.value.verify_code) == ("verify", 20)
    assert info.value.to_send  # the alert for the server


def test_hostname_mismatch(pki):
    root, _, server_id = pki
    server = TlsSession(server_context(server_id), server_side=True)
    client = TlsSession(
        client_context([root]),
        server_side=False,
        server_hostname="other.test",
        verify=True,
        verify_hostname="other.test",
    )
    with pytest.raises(TlsHandshakeError) as info:
        pump(client, server)
    assert info.value.kind == "hostname"
    assert 'does not match "other.test"' in info.value.reason


@pytest.mark.parametrize("max_version", [SSL.TLS1_2_VERSION, SSL.TLS1_3_VERSION])
def test_session_resumption_is_detected(pki, max_version):
    root, _, server_id = pki
    sctx = server_context(server_id, max_version=max_version)
    cctx = client_context([root], max_version=max_version)
    first_c = TlsSession(cctx, server_side=False, server_hostname="example.test")
    first_s = TlsSession(sctx, server_side=True)
    pump(first_c, first_s)
    # TLS 1.3 tickets arrive after the handshake: let the client read them.
    first_c.receive(first_s.send(b"ping"))
    saved = first_c.get_ssl_session()
    assert saved is not None
    second_c = TlsSession(cctx, server_side=False, server_hostname="example.test", ssl_session=saved)
    second_s = TlsSession(sctx, server_side=True)
    pump(second_c, second_s)
    assert second_c.session_reused and second_s.session_reused
    assert not first_c.session_reused and not first_s.session_reused
    # A resumed session carries no new certificate check (see the pool-key rule for session caches).
    assert second_c.verify_errors == []


def test_interop_with_stdlib_memory_bio_client(pki):
    root, _, server_id = pki
    server = TlsSession(server_context(server_id, alpn=[b"http/1.1"]), server_side=True)
    sctx = ssl.create_default_context(cadata=root.cert_pem)
    sctx.set_alpn_protocols(["http/1.1"])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    sslobj = sctx.wrap_bio(incoming, outgoing, server_hostname="example.test")
    for _ in range(10):
        try:
            sslobj.do_handshake()
            done = True
        except ssl.SSLWantReadError:
            done = False
        data = outgoing.read()
        if data:
            _, back, _ = server.receive(data)
            incoming.write(back)
        if done and not data:
            break
    assert server.established and server.sni == "example.test" and server.alpn == "http/1.1"
    sslobj.write(b"GET / HTTP/1.1\r\n\r\n")
    assert server.receive(outgoing.read())[0] == b"GET / HTTP/1.1\r\n\r\n"
    incoming.write(server.send(b"HTTP/1.1 200 OK\r\n\r\n"))
    assert sslobj.read(1024) == b"HTTP/1.1 200 OK\r\n\r\n"
    incoming.write(server.close())
    assert sslobj.read(1024) == b""  # the stdlib reports a received close_notify as end of data
    sslobj.unwrap()
    assert server.receive(outgoing.read()) == (b"", b"", True)
    assert server.close_notify_received


# ---------------------------------------------------------------------------------- per-call savings, same results


def test_negotiated_fields_are_read_on_demand_and_match_openssl(pki):
    root, _, server_id = pki
    server = TlsSession(server_context(server_id, alpn=[b"http/1.1"]), server_side=True)
    client = TlsSession(client_context([root]), server_side=False, alpn_protocols=["http/1.1"])
    assert (server.version, server.cipher, server.alpn) == (None, None, None)  # not before the handshake
    pump(client, server)
    conn = server.ssl_connection
    info = server.info
    assert info is not None
    assert (info.version, info.cipher, info.alpn) == (
        conn.get_protocol_version_name(),
        conn.get_cipher_name(),
        "http/1.1",
    )
    assert (server.version, server.cipher, server.alpn) == (info.version, info.cipher, info.alpn)
    # still readable after the close (they describe the handshake, not the live connection)
    server.close()
    assert server.info is info and info.version == conn.get_protocol_version_name()


def test_send_large_and_non_byte_buffers(pki):
    client, server = _pair(pki)
    # more than one record: the first SSL_write takes 16 KiB (partial-write mode), the rest follows
    blob = bytes(range(256)) * 300
    assert client.receive(server.send(blob))[0] == blob
    words = memoryview(bytearray(blob)).cast("I")  # len() counts items, not bytes
    assert client.receive(server.send(words))[0] == blob
    assert client.receive(server.send(memoryview(blob)[5:]))[0] == blob[5:]
    assert server.send(b"") == b""


def test_send_and_close_is_send_then_close_in_one_piece(pki):
    client, server = _pair(pki)
    wire = server.send_and_close(b"last response")
    assert server.close_notify_sent
    plaintext, _, closed = client.receive(wire)
    assert (plaintext, closed) == (b"last response", True)
    assert client.close_notify_received
    with pytest.raises(TlsLocalError):
        server.send_and_close(b"again")
    # after the peer's close_notify (TLS 1.3 half-close) it still answers, then closes
    client, server = _pair(pki)
    server.receive(client.close())
    plaintext, _, closed = client.receive(server.send_and_close(b"bye"))
    assert (plaintext, closed) == (b"bye", True)
    # nothing to send: just the close_notify
    client, server = _pair(pki)
    assert client.receive(server.send_and_close(b""))[2] is True
