"""The raw data path (``gateway.tls.engine.raw``): its import-time check, its monopoly on pyOpenSSL internals, and
``OP_NO_RENEGOTIATION`` wherever a session can be made, so that no callback can run inside a raw read."""

from __future__ import annotations

import ast
import pathlib
import types

import pytest
from OpenSSL import SSL

from gateway.settings import load_settings
from gateway.tls.engine import raw
from gateway.tls.engine.session import TlsSession
from gateway.tls.engine.x509 import TrustStore
from gateway.tls.served.contexts import new_context
from gateway.tls.served.presets import tls_profile
from gateway.tls.upstream.probes import PROBE_CONTEXTS
from gateway.tls.upstream.profile import ContextCache
from tests.fixtures.certs import make_ca, make_cert
from tests.fixtures.tls_peers import client_context, server_context

GATEWAY = pathlib.Path(__file__).resolve().parents[4] / "gateway"
INTERNAL_NAMES = {"_lib", "_ffi", "_ssl", "_into_ssl", "_from_ssl", "_raise_ssl_error"}


@pytest.fixture(scope="module")
def pki():
    root = make_ca("Raw Root", key_type="ec")
    server = make_cert("example.test", root, key_type="ec", sans=["example.test"])
    return root, server


def _fake_ssl(lib_without: str = "", connection_without: str = "", ffi: bool = True) -> types.SimpleNamespace:
    """A stand-in for ``OpenSSL.SSL`` lacking one internal, built from the real one."""
    lib = types.SimpleNamespace(**{n: getattr(SSL._lib, n) for n in raw.REQUIRED_LIB_SYMBOLS if n != lib_without})

    class Connection:
        def __init__(self, ctx: SSL.Context, sock: None) -> None:
            real = SSL.Connection(ctx, sock)
            for name in raw.REQUIRED_CONNECTION_ATTRIBUTES:
                if name != connection_without:
                    setattr(self, name, getattr(real, name))

    fake = types.SimpleNamespace(
        _lib=lib, Connection=Connection, Context=SSL.Context, TLS_METHOD=SSL.TLS_METHOD, __version__="0.0-test"
    )
    if ffi:
        fake._ffi = SSL._ffi
    return fake


def test_the_installed_pyopenssl_has_every_internal():
    lib, ffi = raw.check_internals()
    assert lib is SSL._lib and ffi is SSL._ffi


@pytest.mark.parametrize(
    ("fake", "named"),
    [
        (_fake_ssl(lib_without="SSL_read"), "_lib.SSL_read"),
        (_fake_ssl(lib_without="SSL_OP_NO_RENEGOTIATION"), "_lib.SSL_OP_NO_RENEGOTIATION"),
        (_fake_ssl(connection_without="_into_ssl"), "Connection._into_ssl"),
        (_fake_ssl(connection_without="_raise_ssl_error"), "Connection._raise_ssl_error"),
        (_fake_ssl(ffi=False), "_ffi"),
    ],
)
def test_a_missing_internal_is_a_clear_startup_error(fake, named):
    with pytest.raises(raw.RawEngineUnavailable) as caught:
        raw.check_internals(fake)
    message = str(caught.value)
    assert named in message and "pyOpenSSL 0.0-test" in message and "pyproject.toml" in message


def _internal_uses(path: pathlib.Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("OpenSSL"):
            found += [f"import {a.name}" for a in node.names if a.name in INTERNAL_NAMES]
        elif isinstance(node, ast.Attribute) and node.attr in INTERNAL_NAMES:
            found.append(f".{node.attr} (line {node.lineno})")
    return found


def test_no_other_module_touches_pyopenssl_internals():
    offenders = {
        str(path.relative_to(GATEWAY.parent)): uses
        for path in sorted(GATEWAY.rglob("*.py"))
        if path.name != "raw.py" or path.parent.name != "engine"
        for uses in [_internal_uses(path)]
        if uses
    }
    assert offenders == {}
    # and the scan does see them where they are
    assert _internal_uses(GATEWAY / "tls" / "engine" / "raw.py")


def _options(ctx: SSL.Context) -> int:
    return ctx.set_options(0)  # adds nothing, returns the options in force


def test_every_gateway_context_refuses_renegotiation(tmp_path):
    served = new_context(tls_profile(load_settings(env={}, overrides={"prefix": str(tmp_path)})))
    upstream = ContextCache().get(1, TrustStore(), None)
    probe = PROBE_CONTEXTS.get(1, TrustStore(), None)
    for ctx in (served, upstream, probe):
        assert _options(ctx) & raw.OP_NO_RENEGOTIATION


def test_every_session_refuses_renegotiation_even_on_a_bare_context(pki):
    root, server_id = pki
    bare = server_context(server_id)
    assert not _options(bare) & raw.OP_NO_RENEGOTIATION
    for session in (
        TlsSession(bare, server_side=True),
        TlsSession(client_context([root]), server_side=False, server_hostname="example.test"),
    ):
        assert raw.renegotiation_disabled(session.ssl_connection)


def _handshake_bare_client(conn: SSL.Connection, server: TlsSession) -> None:
    """A plain pyOpenSSL client (it may renegotiate, a ``TlsSession`` may not) against ``server``, in memory."""
    for _ in range(10):
        try:
            conn.do_handshake()
            return
        except SSL.WantReadError:
            _, to_send, _ = server.receive(conn.bio_read(65536))
            if to_send:
                conn.bio_write(to_send)
    raise AssertionError("handshake did not complete")


def test_a_renegotiation_attempt_runs_no_callback_and_data_still_flows(pki):
    root, server_id = pki
    calls: list[SSL.Connection] = []
    sctx = server_context(server_id, max_version=SSL.TLS1_2_VERSION)
    sctx.set_tlsext_servername_callback(calls.append)  # a Python callback every ClientHello would run
    server = TlsSession(sctx, server_side=True)
    conn = SSL.Connection(client_context([root], max_version=SSL.TLS1_2_VERSION), None)
    conn.set_tlsext_host_name(b"example.test")
    conn.set_connect_state()
    _handshake_bare_client(conn, server)
    assert server.established and server.version == "TLSv1.2"
    before = len(calls)
    assert before == 1
    assert conn.renegotiate()
    with pytest.raises(SSL.WantReadError):
        conn.do_handshake()
    hello = conn.bio_read(65536)
    plaintext, to_send, closed = server.receive(hello)
    # the server answers with a no_renegotiation alert (warning level, TLS 1.2) and stays usable
    assert plaintext == b"" and not closed
    assert to_send[:1] == b"\x15"  # an alert record
    assert len(calls) == before
    conn.bio_write(to_send + server.send(b"still here"))
    with pytest.raises(SSL.Error):  # the client's renegotiation is refused ...
        conn.do_handshake()
    assert not server.errored  # ... and the server never ran a handshake step inside its raw read
