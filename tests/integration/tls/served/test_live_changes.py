"""Certificates change under a running gateway: the next handshake sees the change, open connections keep working.

Three ways in, as Kong has them: the Admin API (PATCH the cert/key, POST an SNI, a rejected write, DELETE),
``POST /config`` in DB-less mode, and SIGHUP re-reading ``ssl_cert``/``ssl_cert_key`` files. The gateway rebuilds
its snapshot after each commit, asynchronously; tests wait on the observable outcome (a real handshake serving
the new certificate, bounded), never on a clock. Each open keepalive connection proves it is the same socket
(same local port, still presenting the certificate it was handshaken with) and that it still serves requests.
"""

from __future__ import annotations

import signal

from tests.fixtures.admin_client import Admin
from tests.fixtures.certs import make_cert
from tests.fixtures.nginx import NginxServer
from tests.integration.tls.served.clients import HttpsKeepalive, cn, key_type, s_client, wait_until
from tests.integration.tls.served.conftest import Pki, certificate_body, start_ssl_gateway

ECDSA_FIRST = ("-sigalgs", "ECDSA+SHA256:RSA-PSS+SHA256:RSA+SHA256")


def _served(port: int, sni: str | None, expected: str, *extra: str) -> list[str]:
    """Wait (bounded) until a new handshake for ``sni`` serves ``expected``; returns the chain's subjects."""
    handshake = wait_until(lambda: s_client(port, sni, *extra), lambda h: h.subjects[:1] == [expected])
    assert handshake.subjects[:1] == [expected], handshake.output
    return handshake.subjects


def test_admin_api_rotation_applies_to_next_handshake_and_keeps_open_connections(
    tmp_path, pki: Pki, upstream: NginxServer
) -> None:
    gw = start_ssl_gateway(tmp_path)
    admin = Admin(gw)
    port = gw.proxy_ssl_port
    assert port is not None
    try:
        admin.post("/services", {"name": "rot", "url": f"http://127.0.0.1:{upstream.port}"})
        admin.post("/services/rot/routes", {"hosts": ["rot.test", "rot2.test"]})
        cert_a = make_cert("rot-a.test", pki.inter_rsa, sans=["rot.test"])
        cert_b = make_cert("rot-b.test", pki.inter_rsa, sans=["rot.test", "rot2.test"])
        cert_b_ec = make_cert("rot-b.test", pki.inter_ec, key_type="ec", sans=["rot.test", "rot2.test"])
        unrelated = make_cert("other.test", pki.inter_rsa)
        cert_id = admin.post("/certificates", certificate_body(cert_a, snis=["rot.test"]))["id"]
        _served(port, "rot.test", "rot-a.test")

        early = HttpsKeepalive(port, "rot.test")
        assert early.get()[0] == 200
        local_port = early.local_port

        # PATCH cert/key: the next handshake gets B; the open connection keeps A and keeps serving
        admin.patch(f"/certificates/{cert_id}", {"cert": cert_b.chain_pem, "key": cert_b.key_pem})
        assert _served(port, "rot.test", "rot-b.test") == ["rot-b.test", "Kong Testing RSA Intermediate"]
        assert early.get()[0] == 200
        assert early.local_port == local_port and cn(early.peer_certificate) == "rot-a.test"

        # a rejected write (key of another certificate) changes nothing: a later unrelated write is built into a
        # new snapshot, and rot.test still serves B
        res = admin.http.patch(f"/certificates/{cert_id}", json={"cert": cert_a.chain_pem, "key": cert_b.key_pem})
        assert res.status_code == 400 and "certificate does not match key" in res.text
        admin.post("/certificates", certificate_body(unrelated, snis=["unrelated.test"]))
        _served(port, "unrelated.test", "other.test")
        assert s_client(port, "rot.test").subjects[0] == "rot-b.test"

        # adding the ECDSA pair: ECDSA-capable clients get it, with its own intermediate
        admin.patch(f"/certificates/{cert_id}", {"cert_alt": cert_b_ec.chain_pem, "key_alt": cert_b_ec.key_pem})
        ec = wait_until(lambda: s_client(port, "rot.test", *ECDSA_FIRST), lambda h: key_type(h.leaf) == "ec")
        assert ec.subjects == ["rot-b.test", "Kong Testing ECDSA Intermediate"]

        # POST a new SNI to the certificate
        admin.post(f"/certificates/{cert_id}/snis", {"name": "rot2.test"})
        _served(port, "rot2.test", "rot-b.test")

        # DELETE: both names fall back to the default certificate; the early connection still works
        admin.delete(f"/certificates/{cert_id}")
        _served(port, "rot.test", "localhost")
        _served(port, "rot2.test", "localhost")
        status, body = early.get()
        assert status == 200 and body.startswith(b"ok uri=/ ") and b"xfp=https" in body
        assert early.local_port == local_port and early.requests == 3
        early.close()
    finally:
        admin.close()
        assert gw.stop() == 0


def _declarative(upstream_port: int, cert_pem: str, key_pem: str) -> dict[str, object]:
    return {
        "_format_version": "3.0",
        "services": [
            {
                "name": "dbless",
                "url": f"http://127.0.0.1:{upstream_port}",
                "routes": [{"name": "r", "hosts": ["dbless.test"]}],
            }
        ],
        "certificates": [{"cert": cert_pem, "key": key_pem, "snis": [{"name": "dbless.test"}]}],
    }


def test_post_config_replaces_served_certificates_without_dropping_connections(
    tmp_path, pki: Pki, upstream: NginxServer
) -> None:
    gw = start_ssl_gateway(tmp_path, {"KONG_DATABASE": "off"})
    admin = Admin(gw)
    port = gw.proxy_ssl_port
    assert port is not None
    try:
        first = make_cert("dbless-1.test", pki.inter_rsa, sans=["dbless.test"])
        second = make_cert("dbless-2.test", pki.inter_ec, key_type="ec", sans=["dbless.test"])
        admin.post("/config", _declarative(upstream.port, first.chain_pem, first.key_pem))
        _served(port, "dbless.test", "dbless-1.test")
        early = HttpsKeepalive(port, "dbless.test")
        assert early.get()[0] == 200

        # an invalid document is rejected whole: still the first certificate
        bad = _declarative(upstream.port, first.chain_pem, second.key_pem)
        res = admin.http.post("/config", json=bad)
        assert res.status_code == 400, res.text
        assert s_client(port, "dbless.test").subjects[0] == "dbless-1.test"

        admin.post("/config", _declarative(upstream.port, second.chain_pem, second.key_pem))
        assert _served(port, "dbless.test", "dbless-2.test") == ["dbless-2.test", "Kong Testing ECDSA Intermediate"]
        assert early.get()[0] == 200 and cn(early.peer_certificate) == "dbless-1.test"
        early.close()
    finally:
        admin.close()
        assert gw.stop() == 0


def test_sighup_rereads_ssl_cert_files(tmp_path, pki: Pki, upstream: NginxServer) -> None:
    """``ssl_cert``/``ssl_cert_key`` are read at start and on SIGHUP (Kong: ``kong reload``), not per handshake."""
    rsa_a = make_cert("file-a.test", pki.inter_rsa)
    rsa_b = make_cert("file-b.test", pki.inter_rsa)
    cert_file, key_file = tmp_path / "server.crt", tmp_path / "server.key"
    cert_file.write_text(rsa_a.chain_pem)
    key_file.write_text(rsa_a.key_pem)
    env = {"KONG_SSL_CERT": str(cert_file), "KONG_SSL_CERT_KEY": str(key_file)}
    gw = start_ssl_gateway(tmp_path, env)
    port = gw.proxy_ssl_port
    assert port is not None
    try:
        admin = Admin(gw)
        admin.post("/services", {"name": "files", "url": f"http://127.0.0.1:{upstream.port}"})
        admin.post("/services/files/routes", {"paths": ["/"]})
        admin.close()
        assert s_client(port, None).subjects == ["file-a.test", "Kong Testing RSA Intermediate"]
        early = wait_until(lambda: HttpsKeepalive(port, "files.test"), lambda c: c.get()[0] == 200)

        cert_file.write_text(rsa_b.chain_pem)
        key_file.write_text(rsa_b.key_pem)
        # a file change alone is not read (no per-handshake file access)
        assert s_client(port, "whatever.test").subjects[0] == "file-a.test"
        gw.signal(signal.SIGHUP)
        _served(port, None, "file-b.test")
        _served(port, "whatever.test", "file-b.test")
        assert early.get()[0] == 200 and cn(early.peer_certificate) == "file-a.test"
        early.close()

        # a SIGHUP that cannot read the files keeps the running certificates
        key_file.unlink()
        gw.signal(signal.SIGHUP)
        log = wait_until(lambda: gw.error_log.read_text(), lambda text: "reload failed" in text)
        assert "[config] reload failed, keeping the running configuration: ssl_cert_key" in log
        assert s_client(port, None).subjects[0] == "file-b.test"
    finally:
        assert gw.stop() == 0
