"""mtls-auth revocation checks end to end: a local ``openssl ocsp`` responder and a CRL served over HTTP.

``openssl ocsp -port`` (OpenSSL 3.0) cannot bind to loopback only, so the responder is ``openssl ocsp`` in its
file mode (``-reqin``/``-respout``: OpenSSL builds and signs every answer from ``index.txt``) behind a small
loopback HTTP server that also serves the CRL; each OCSP POST runs one bounded ``openssl ocsp`` invocation.

The client CA ``R`` issues leaves whose AIA points at the responder (or at a closed port: "responder down") and
leaves whose CRL distribution point is the local CRL server (or a closed port). Two routes trust ``R``: one in
``IGNORE_CA_ERROR`` (Kong's default), one in ``STRICT``; a third uses a configured CRL (``config.crls``).
"""

from __future__ import annotations

import datetime
import http.server
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import AuthorityInformationAccessOID

from tests.fixtures.admin_client import Admin
from tests.fixtures.certs import Issued, make_ca, make_cert
from tests.fixtures.gateway_process import GatewayProcess
from tests.fixtures.nginx import NginxServer
from tests.fixtures.ports import closed_port
from tests.integration.plugins.mtls_auth.conftest import curl, start_gateway, wait_until

FAILED = '{"message":"TLS certificate failed verification"}'


def _leaf(ca: Issued, cn: str, *, ocsp_url: str | None = None, crl_url: str | None = None) -> Issued:
    """A CN-only client leaf of ``ca`` whose AIA names ``ocsp_url`` and whose CRL distribution point is ``crl_url``."""
    extensions: list[x509.ExtensionType] = []
    if ocsp_url:
        extensions.append(
            x509.AuthorityInformationAccess(
                [x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))]
            )
        )
    if crl_url:
        extensions.append(
            x509.CRLDistributionPoints(
                [x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)]
            )
        )
    return make_cert(cn, issuer=ca, key_type="ec", sans=[], extensions=extensions)


def _crl(ca: Issued, revoked: list[Issued]) -> x509.CertificateRevocationList:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(now - datetime.timedelta(minutes=5))
        .next_update(now + datetime.timedelta(days=1))
    )
    for item in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(item.cert.serial_number)
            .revocation_date(now - datetime.timedelta(minutes=1))
            .build()
        )
    return builder.sign(ca.key, hashes.SHA256())


def _index_line(item: Issued, revoked: bool) -> str:
    expiry = item.cert.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")
    when = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)).strftime("%y%m%d%H%M%SZ")
    serial = f"{item.cert.serial_number:X}"
    serial = "0" + serial if len(serial) % 2 else serial
    subject = "/" + "/".join(a.rfc4514_string() for a in item.cert.subject)
    return "\t".join(["R" if revoked else "V", expiry, when if revoked else "", serial, "unknown", subject]) + "\n"


class _CrlHandler(http.server.BaseHTTPRequestHandler):
    crl_der = b""
    ocsp_dir: Path | None = None
    ocsp_up = True

    def do_POST(self) -> None:
        """One OCSP request answered by ``openssl ocsp`` from the index file (RFC 6960 over HTTP POST)."""
        directory = self.ocsp_dir
        if self.path != "/ocsp" or directory is None or not self.ocsp_up:
            self.send_error(503 if self.path == "/ocsp" else 404)
            return
        request = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with tempfile.TemporaryDirectory(dir=directory) as work:
            (Path(work) / "req.der").write_bytes(request)
            subprocess.run(
                [
                    "openssl", "ocsp", "-index", str(directory / "index.txt"), "-CA", str(directory / "ca.pem"),
                    "-rsigner", str(directory / "ca.pem"), "-rkey", str(directory / "ca.key"),
                    "-reqin", str(Path(work) / "req.der"), "-respout", str(Path(work) / "resp.der"),
                ],
                capture_output=True,
                timeout=10,
                check=True,
            )  # fmt: skip
            answer = (Path(work) / "resp.der").read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/ocsp-response")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def do_GET(self) -> None:
        if self.path != "/ca.crl":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/pkix-crl")
        self.send_header("Content-Length", str(len(self.crl_der)))
        self.end_headers()
        self.wfile.write(self.crl_der)

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class Leaves:
    ocsp_good: Issued
    ocsp_revoked: Issued
    ocsp_down: Issued
    crl_good: Issued
    crl_revoked: Issued
    crl_down: Issued
    no_source: Issued
    configured_revoked: Issued


@dataclass
class RevocationSetup:
    gw: GatewayProcess
    port: int
    leaves: Leaves
    files: Path

    def files_for(self, item: Issued) -> tuple[str, str]:
        name = str(item.cert.serial_number)
        chain, key = self.files / f"{name}.pem", self.files / f"{name}.key"
        if not chain.exists():
            chain.write_text(item.cert_pem)
            key.write_text(item.key_pem)
        return str(chain), str(key)

    def get(self, path: str, item: Issued) -> tuple[int, str]:
        cert, key = self.files_for(item)
        reply = curl(self.port, path, cert=cert, key=key)
        return reply.status, reply.body


@pytest.fixture(scope="module")
def revocation(tmp_path_factory: pytest.TempPathFactory, echo_upstream: NginxServer) -> Iterator[RevocationSetup]:
    files = tmp_path_factory.mktemp("revocation")
    ca = make_ca("Revocation Test CA", key_type="ec")
    dead = closed_port()
    dead_url = f"http://127.0.0.1:{dead}/"
    crl_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CrlHandler)
    base = f"http://127.0.0.1:{crl_server.server_address[1]}"
    crl_url, ocsp_url = f"{base}/ca.crl", f"{base}/ocsp"
    leaves = Leaves(
        ocsp_good=_leaf(ca, "ocsp-good", ocsp_url=ocsp_url),
        ocsp_revoked=_leaf(ca, "ocsp-revoked", ocsp_url=ocsp_url),
        ocsp_down=_leaf(ca, "ocsp-down", ocsp_url=dead_url),
        crl_good=_leaf(ca, "crl-good", crl_url=crl_url),
        crl_revoked=_leaf(ca, "crl-revoked", crl_url=crl_url),
        crl_down=_leaf(ca, "crl-down", crl_url=f"{dead_url}ca.crl"),
        no_source=_leaf(ca, "no-source"),
        configured_revoked=_leaf(ca, "configured-revoked"),
    )
    _CrlHandler.crl_der = _crl(ca, [leaves.crl_revoked]).public_bytes(serialization.Encoding.DER)
    (files / "index.txt").write_text(_index_line(leaves.ocsp_good, False) + _index_line(leaves.ocsp_revoked, True))
    (files / "ca.pem").write_text(ca.cert_pem)
    (files / "ca.key").write_text(ca.key_pem)
    _CrlHandler.ocsp_dir = files
    threading.Thread(target=crl_server.serve_forever, daemon=True).start()
    gw = None
    try:
        gw = start_gateway(tmp_path_factory.mktemp("revocation-gw"))
        admin = Admin(gw)
        ca_id = admin.post("/ca_certificates", {"cert": ca.cert_pem})["id"]
        admin.post("/services", {"name": "echo", "url": f"http://127.0.0.1:{echo_upstream.port}"})
        configured = _crl(ca, [leaves.configured_revoked]).public_bytes(serialization.Encoding.PEM).decode()
        for name, mode, extra in (
            ("ignore", "IGNORE_CA_ERROR", {}),
            ("strict", "STRICT", {}),
            ("skip", "SKIP", {}),
            ("configured", "STRICT", {"crls": [configured]}),
        ):
            admin.post("/services/echo/routes", {"name": name, "paths": [f"/{name}"]})
            config = {
                "ca_certificates": [ca_id],
                "revocation_check_mode": mode,
                "skip_consumer_lookup": True,
                "http_timeout": 5000,
                **extra,
            }
            admin.post(f"/routes/{name}/plugins", {"name": "mtls-auth", "config": config})
        admin.close()
        port = gw.proxy_ssl_port
        assert port is not None
        setup = RevocationSetup(gw, port, leaves, files)
        status = wait_until(lambda: setup.get("/configured", leaves.configured_revoked)[0], lambda s: s != 404)
        assert status == 401
        yield setup
    finally:
        if gw is not None:
            assert gw.stop() == 0
        crl_server.shutdown()
        crl_server.server_close()


def test_ocsp_good_is_200(revocation: RevocationSetup) -> None:
    for path in ("/ignore", "/strict"):
        status, body = revocation.get(path, revocation.leaves.ocsp_good)
        assert status == 200, (path, body)


def test_ocsp_revoked_is_401(revocation: RevocationSetup) -> None:
    start = revocation.gw.error_log.stat().st_size
    for path in ("/ignore", "/strict"):
        assert revocation.get(path, revocation.leaves.ocsp_revoked) == (401, FAILED)
    assert "[mtls-auth] certificate revoked (OCSP)" in revocation.gw.error_log.read_text()[start:]
    assert revocation.get("/skip", revocation.leaves.ocsp_revoked)[0] == 200  # SKIP checks nothing


def test_ocsp_responder_down(revocation: RevocationSetup) -> None:
    start = revocation.gw.error_log.stat().st_size
    assert revocation.get("/ignore", revocation.leaves.ocsp_down)[0] == 200
    assert revocation.get("/strict", revocation.leaves.ocsp_down) == (401, FAILED)
    log = revocation.gw.error_log.read_text()[start:]
    assert "[mtls-auth] revocation status could not be checked, ignored: OCSP http://127.0.0.1:" in log
    assert "[mtls-auth] revocation status could not be checked (STRICT)" in log


def test_crl_good_and_revoked(revocation: RevocationSetup) -> None:
    for path in ("/ignore", "/strict"):
        assert revocation.get(path, revocation.leaves.crl_good)[0] == 200
        assert revocation.get(path, revocation.leaves.crl_revoked) == (401, FAILED)


def test_crl_server_down(revocation: RevocationSetup) -> None:
    assert revocation.get("/ignore", revocation.leaves.crl_down)[0] == 200
    assert revocation.get("/strict", revocation.leaves.crl_down) == (401, FAILED)


def test_no_revocation_source(revocation: RevocationSetup) -> None:
    """Kong's STRICT: a certificate without OCSP or CRL URL counts as revoked; IGNORE_CA_ERROR lets it pass."""
    assert revocation.get("/ignore", revocation.leaves.no_source)[0] == 200
    assert revocation.get("/strict", revocation.leaves.no_source) == (401, FAILED)


def test_configured_crl(revocation: RevocationSetup) -> None:
    assert revocation.get("/configured", revocation.leaves.configured_revoked) == (401, FAILED)
    assert revocation.get("/configured", revocation.leaves.ocsp_good)[0] == 200  # covered by the CRL: not revoked
