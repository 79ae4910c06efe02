"""The upstream keepalive pool and the TLS session cache, keyed by the complete TLS identity (in-process proxy).

Kong's ``25-upstream_keepalive_spec.lua`` (reference 8.E, cases 85-89) is asserted through Kong's debug lines
(``enabled connection keepalive (pool=...)``, ``keepalive no free / saving / reusing / not saving connection``,
``free connection pool``) and through what nginx saw: ``X-Conn`` (``$connection``) tells whether two requests
shared a TCP connection, ``X-Reused`` (``$ssl_session_reused``) whether a TLS session was resumed. Our pool
names show content digests (16 hex digits) where Kong shows entity ids, and ``-`` for a null ``tls_verify``.

Beyond Kong: a service with an Upstream-entity client certificate never shares a connection with one without
(Kong 3.10 leaves that certificate out of its key), null and false ``tls_verify`` never share, and sessions never
cross TLS identities, in either order and for TLS 1.2 and 1.3.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from gateway.tls.engine.x509 import TrustStore, load_pem_chain, load_pem_private_key
from gateway.tls.upstream.material import ClientCertificate
from tests.integration.proxy.harness import config, read_response, route, running_gateway, service
from tests.integration.tls.upstream.pki import Pki
from tests.integration.tls.upstream.upstreams import Upstreams

pytestmark = pytest.mark.timeout(30)

Row = dict[str, Any]


def _ca_row(pem: str) -> Row:
    return {"id": str(uuid.uuid4()), "cert": pem, "cert_digest": uuid.uuid4().hex}


def _cert_row(issued: Any) -> Row:
    return {"id": str(uuid.uuid4()), "cert": issued.chain_pem, "key": issued.key_pem, "cert_alt": None, "key_alt": None}


def _cert_digest(issued: Any) -> str:
    chain = load_pem_chain(issued.chain_pem)
    return ClientCertificate(chain, load_pem_private_key(issued.key_pem), "service", None).digest[:16]


def _trust_digest(*pems: str) -> str:
    return TrustStore([c for p in pems for c in load_pem_chain(p)]).digest[:16]


def _https(port: int, host: str = "127.0.0.1", **fields: Any) -> Row:
    return service(host, port, protocol="https", retries=0, **fields)


async def _get(port: int, host: str) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        status, headers, body, _ = await read_response(reader)
        return status, headers, body
    finally:
        writer.close()


def _count(log: str, pattern: str) -> int:
    return len(re.findall(pattern, log, flags=re.MULTILINE))


# --------------------------------------------------------------------------------------------- 8.E, 85-89


async def test_85_pools_by_host_port_sni_verify_depth_cas(tmp_path: Path, pki: Pki, upstreams: Upstreams) -> None:
    port = upstreams.ports["tls"]
    ca = _ca_row(pki.root.cert_pem)
    one = _https(port, tls_verify=False, tls_verify_depth=3, ca_certificates=[ca["id"]])
    two = _https(port, tls_verify=False, tls_verify_depth=3, ca_certificates=[ca["id"]])
    cfg = config(
        [one, two],
        [route(one, hosts=["one.test"], preserve_host=True), route(two, hosts=["two.test"], preserve_host=True)],
        ca_certificates=[ca],
    )
    async with running_gateway(tmp_path, cfg, log_level="debug") as gw:
        status, headers, body = await _get(gw.port, "one.test")
        assert (status, body, headers["x-sni"]) == (200, b"it works", "one.test")
        status, headers, body = await _get(gw.port, "two.test")
        assert (status, headers["x-sni"]) == (200, "two.test")
        log = gw.error_log
    cas = _trust_digest(pki.root.cert_pem)
    for host in ("one.test", "two.test"):
        name = re.escape(f"127.0.0.1|{port}|{host}|0|3|{cas}|")
        assert (
            _count(
                log,
                rf"\[debug\] \d+#0: \*\d+ enabled connection keepalive \(pool={name}, pool_size=512, "
                rf"idle_timeout=60, max_requests=10000\), client: 127\.0\.0\.1, server: kong, ",
            )
            == 1
        )
        where = rf"host: 127\.0\.0\.1:{port}, name: {name}"
        assert _count(log, rf"lua balancer: keepalive no free connection, {where}") == 1
        assert _count(log, rf"lua balancer: keepalive saving connection [0-9A-F]+, {where}") == 1
    assert _count(log, "lua balancer: keepalive no free connection") == 2
    assert _count(log, "lua balancer: keepalive saving connection") == 2
    assert "keepalive: free connection pool" not in log


async def test_86_pools_by_client_certificate(tmp_path: Path, pki: Pki, upstreams: Upstreams) -> None:
    port = upstreams.ports["mtls"]
    cert_one, cert_two = _cert_row(pki.client_one), _cert_row(pki.client_two)
    one = _https(port, client_certificate={"id": cert_one["id"]})
    two = _https(port, client_certificate={"id": cert_two["id"]})
    cfg = config(
        [one, two],
        [route(one, hosts=["example.test"]), route(two, hosts=["example2.test"])],
        certificates=[cert_one, cert_two],
    )
    async with running_gateway(tmp_path, cfg, log_level="debug") as gw:
        _, headers_one, _ = await _get(gw.port, "example.test")
        _, headers_two, _ = await _get(gw.port, "example2.test")
        log = gw.error_log
    assert headers_one["x-client-fp"] and headers_two["x-client-fp"]
    assert headers_one["x-client-fp"] != headers_two["x-client-fp"]
    assert headers_one["x-conn"] != headers_two["x-conn"]
    for issued in (pki.client_one, pki.client_two):
        name = re.escape(f"127.0.0.1|{port}|127.0.0.1:{port}|-|1||{_cert_digest(issued)}")
        assert _count(log, rf"enabled connection keepalive \(pool={name}, ") == 1
        assert _count(log, rf"keepalive saving connection [0-9A-F]+, host: 127\.0\.0\.1:{port}, name: {name}") == 1


async def test_87_pool_size_zero_disables_pooling(tmp_path: Path, upstreams: Upstreams) -> None:
    port = upstreams.ports["tls"]
    svc = _https(port)
    cfg = config([svc], [route(svc)])
    async with running_gateway(tmp_path, cfg, log_level="debug", upstream_keepalive_pool_size="0") as gw:
        _, first, _ = await _get(gw.port, "any.test")
        _, second, _ = await _get(gw.port, "any.test")
        log = gw.error_log
    assert first["x-conn"] != second["x-conn"]
    assert "enabled connection keepalive" not in log
    assert "keepalive saving connection" not in log


async def test_88_an_identical_request_reuses_the_connection(tmp_path: Path, upstreams: Upstreams) -> None:
    port = upstreams.ports["tls"]
    svc = _https(port)
    cfg = config([svc], [route(svc)])
    async with running_gateway(tmp_path, cfg, log_level="debug") as gw:
        _, first, _ = await _get(gw.port, "any.test")
        _, second, _ = await _get(gw.port, "any.test")
        log = gw.error_log
    assert first["x-conn"] == second["x-conn"]
    name = re.escape(f"127.0.0.1|{port}|127.0.0.1:{port}|-|1||")
    saved = re.findall(rf"keepalive saving connection ([0-9A-F]+), host: 127\.0\.0\.1:{port}, name: {name}", log)
    reused = re.findall(rf"keepalive reusing connection ([0-9A-F]+), host: 127\.0\.0\.1:{port}, name: {name}", log)
    assert len(saved) == 2 and len(reused) == 1
    assert reused[0] == saved[0]


async def test_89_max_requests_one_frees_the_pool(tmp_path: Path, upstreams: Upstreams) -> None:
    port = upstreams.ports["tls"]
    svc = _https(port)
    cfg = config([svc], [route(svc)])
    async with running_gateway(tmp_path, cfg, log_level="debug", upstream_keepalive_max_requests="1") as gw:
        _, first, _ = await _get(gw.port, "any.test")
        _, second, _ = await _get(gw.port, "any.test")
        log = gw.error_log
    assert first["x-conn"] != second["x-conn"]
    name = f"127.0.0.1|{port}|127.0.0.1:{port}|-|1||"
    assert _count(log, r"lua balancer: keepalive not saving connection [0-9A-F]+") == 2
    assert _count(log, rf'keepalive: free connection pool [0-9A-F]+ for "{re.escape(name)}"') == 2
    assert "keepalive saving connection" not in log


# --------------------------------------------------------------------------------------------- beyond Kong


async def test_upstream_entity_certificate_never_shares_a_connection(
    tmp_path: Path, pki: Pki, upstreams: Upstreams
) -> None:
    """Both services reach 127.0.0.1:<port> with the same upstream host, so Kong 3.10's key is the same for
    both; ours differs by the digest of the certificate the Upstream entity supplies."""
    port = upstreams.ports["optional"]
    cert = _cert_row(pki.client_one)
    upstream = {
        "id": str(uuid.uuid4()),
        "name": "backend-opt",
        "host_header": None,
        "client_certificate": {"id": cert["id"]},
    }
    target = {"id": str(uuid.uuid4()), "target": f"127.0.0.1:{port}", "weight": 100, "upstream": {"id": upstream["id"]}}
    with_cert = _https(443, host="backend-opt")
    without = _https(port)
    cfg = config(
        [with_cert, without],
        [route(with_cert, hosts=["with.test"]), route(without, hosts=["without.test"])],
        certificates=[cert],
        upstreams=[upstream],
        targets=[target],
    )
    async with running_gateway(tmp_path, cfg) as gw:
        _, a1, _ = await _get(gw.port, "with.test")
        _, b1, _ = await _get(gw.port, "without.test")
        _, a2, _ = await _get(gw.port, "with.test")
        _, b2, _ = await _get(gw.port, "without.test")
    assert a1["x-client-dn"] == a2["x-client-dn"] == "CN=example.com"
    assert "x-client-dn" not in b1 and "x-client-dn" not in b2  # nginx omits empty values
    assert a1["x-conn"] == a2["x-conn"]  # each keeps its own pooled connection
    assert b1["x-conn"] == b2["x-conn"]
    assert a1["x-conn"] != b1["x-conn"]


async def test_null_and_false_tls_verify_never_share(tmp_path: Path, upstreams: Upstreams) -> None:
    port = upstreams.ports["tls"]
    null, false = _https(port), _https(port, tls_verify=False)
    cfg = config([null, false], [route(null, hosts=["null.test"]), route(false, hosts=["false.test"])])
    async with running_gateway(tmp_path, cfg) as gw:
        _, a, _ = await _get(gw.port, "null.test")
        _, b, _ = await _get(gw.port, "false.test")
        _, c, _ = await _get(gw.port, "null.test")
    assert a["x-conn"] == c["x-conn"] != b["x-conn"]


# --------------------------------------------------------------------------------------------- sessions


def _trust_services(port: int, pki: Pki) -> tuple[Row, Row, Row, Row, list[Row]]:
    """``loose`` (verify off), ``strict`` (verify with the root), ``wrong`` (verify with an unrelated CA),
    ``shallow`` (the root, depth 0), all to the same address and upstream host."""
    root, other = _ca_row(pki.root.cert_pem), _ca_row(pki.other_ca.cert_pem)
    # same depth and CA set as ``strict``: one shared SSL context, so only the key keeps their sessions apart
    loose = _https(port, host="localhost", tls_verify=False, ca_certificates=[root["id"]])
    strict = _https(port, host="localhost", tls_verify=True, ca_certificates=[root["id"]])
    wrong = _https(port, host="localhost", tls_verify=True, ca_certificates=[other["id"]])
    shallow = _https(port, host="localhost", tls_verify=True, tls_verify_depth=0, ca_certificates=[root["id"]])
    return loose, strict, wrong, shallow, [root, other]


def _session_config(port: int, pki: Pki) -> dict[str, list[Row]]:
    loose, strict, wrong, shallow, cas = _trust_services(port, pki)
    routes = [
        route(loose, hosts=["loose.test"]),
        route(strict, hosts=["strict.test"]),
        route(wrong, hosts=["wrong.test"]),
        route(shallow, hosts=["shallow.test"]),
    ]
    return config([loose, strict, wrong, shallow], routes, ca_certificates=cas)


@pytest.mark.parametrize("server", ["tls", "tls12"])
@pytest.mark.parametrize("order", [("loose.test", "strict.test"), ("strict.test", "loose.test")])
async def test_sessions_never_cross_trust_settings(
    tmp_path: Path, pki: Pki, upstreams: Upstreams, server: str, order: tuple[str, str]
) -> None:
    """Pooling off, so every request is a new connection that would resume whatever session it is offered."""
    cfg = _session_config(upstreams.ports[server], pki)
    first, second = order
    async with running_gateway(tmp_path, cfg, upstream_keepalive_pool_size="0") as gw:
        _, a1, _ = await _get(gw.port, first)
        _, a2, _ = await _get(gw.port, first)
        _, b1, _ = await _get(gw.port, second)
        _, b2, _ = await _get(gw.port, second)
        _, a3, _ = await _get(gw.port, first)
    proto = "TLSv1.2" if server == "tls12" else "TLSv1.3"
    assert a1["x-proto"] == proto
    assert (a1["x-reused"], a2["x-reused"]) == (".", "r")  # resumption works within one identity
    assert (b1["x-reused"], b2["x-reused"]) == (".", "r")  # but the other identity starts afresh
    assert a3["x-reused"] == "r"
    assert len({a1["x-conn"], a2["x-conn"], b1["x-conn"], b2["x-conn"], a3["x-conn"]}) == 5


@pytest.mark.parametrize("server", ["tls", "tls12"])
async def test_a_stricter_store_never_accepts_a_session_verified_under_a_looser_one(
    tmp_path: Path, pki: Pki, upstreams: Upstreams, server: str
) -> None:
    """nginx keys sessions by peer address: a session verified under one trust store is resumed (with its
    verification result) under another. Here the wrong-CA service does a full handshake and fails with 20."""
    port = upstreams.ports[server]
    cfg = _session_config(port, pki)
    async with running_gateway(tmp_path, cfg, upstream_keepalive_pool_size="0") as gw:
        for host in ("loose.test", "strict.test", "strict.test"):
            status, _, _ = await _get(gw.port, host)
            assert status == 200
        status, _, body = await _get(gw.port, "wrong.test")
        log = gw.error_log
    assert status == 502
    assert b"An invalid response was received from the upstream server" in body
    assert "upstream SSL certificate verify error: (20:unable to get local issuer certificate) while SSL" in log


@pytest.mark.parametrize("server", ["tls", "tls12"])
async def test_a_failed_verification_leaves_no_session(
    tmp_path: Path, pki: Pki, upstreams: Upstreams, server: str
) -> None:
    """The nginx measurement of the issue, reversed: after depth 0 failed, the depth-1 service must handshake
    in full (no session stored by the failure) and succeed."""
    cfg = _session_config(upstreams.ports[server], pki)
    async with running_gateway(tmp_path, cfg, upstream_keepalive_pool_size="0") as gw:
        status, _, _ = await _get(gw.port, "shallow.test")
        assert status == 502
        assert "(22:certificate chain too long)" in gw.error_log
        status, headers, _ = await _get(gw.port, "strict.test")
    assert status == 200
    assert headers["x-reused"] == "."


async def test_session_reuse_can_be_turned_off(tmp_path: Path, pki: Pki, upstreams: Upstreams) -> None:
    cfg = _session_config(upstreams.ports["tls"], pki)
    async with running_gateway(tmp_path, cfg, upstream_keepalive_pool_size="0", proxy_ssl_session_reuse="off") as gw:
        _, first, _ = await _get(gw.port, "strict.test")
        _, second, _ = await _get(gw.port, "strict.test")
    assert (first["x-reused"], second["x-reused"]) == (".", ".")


@pytest.mark.parametrize("inline", [False, True])
async def test_global_client_certificate_is_the_last_fallback(
    tmp_path: Path, pki: Pki, upstreams: Upstreams, inline: bool
) -> None:
    """``client_ssl = on`` with ``client_ssl_cert``/``_key`` (files or inline PEM): used when neither the service
    nor an Upstream entity names a certificate, leaf + intermediate sent."""
    cert, key = pki.client_two.chain_pem, pki.client_two.key_pem
    if not inline:
        (tmp_path / "client.pem").write_text(cert)
        (tmp_path / "client.key").write_text(key)
        cert, key = str(tmp_path / "client.pem"), str(tmp_path / "client.key")
    own = _cert_row(pki.client_one)
    fallback, explicit = (
        _https(upstreams.ports["mtls"]),
        _https(upstreams.ports["mtls"], client_certificate={"id": own["id"]}),
    )
    cfg = config(
        [fallback, explicit],
        [route(fallback, hosts=["fallback.test"]), route(explicit, hosts=["explicit.test"])],
        certificates=[own],
    )
    async with running_gateway(tmp_path, cfg, client_ssl="on", client_ssl_cert=cert, client_ssl_cert_key=key) as gw:
        status, a, _ = await _get(gw.port, "fallback.test")
        assert status == 200
        _, b, _ = await _get(gw.port, "explicit.test")
    assert a["x-client-dn"] == "CN=example2.com"
    assert b["x-client-dn"] == "CN=example.com"
