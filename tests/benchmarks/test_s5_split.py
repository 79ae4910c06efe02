"""``benchmarks.s5_split``: its tls-only server is the gateway's TLS listener configured as S5 (full handshakes) with a
fixed answer, checked by real clients (Python's ``ssl`` verifying the benchmarks' chain, curl); and the split it
prints is the difference of the medians it measured."""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.pki import Pki, make_pki
from benchmarks.processes import Processes, Server, free_port
from benchmarks.s5_split import RESPONSE, Figures, main, split_lines, tls_only_argv

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), "rsa")


@pytest.fixture(scope="module")
def tls_only(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("log") / "tls-only.log"
    port = free_port()
    with Processes() as procs:
        yield procs.spawn("the tls-only server", tls_only_argv(port, pki.server_chain, pki.server_key), port, log)


def _client(pki: Pki) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.root))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _request(context: ssl.SSLContext, port: int, session: ssl.SSLSession | None = None) -> tuple[bytes, ssl.SSLSocket]:
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    tls = context.wrap_socket(raw, server_hostname="localhost", session=session, suppress_ragged_eofs=False)
    tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    received = b""
    while True:
        chunk = tls.recv(65536)  # b"" once the server's close_notify came (a bare TCP close would raise here)
        if not chunk:
            return received, tls
        received += chunk


def test_it_answers_a_verifying_client_with_the_fixed_response_and_a_close_notify(pki: Pki, tls_only: Server) -> None:
    received, tls = _request(_client(pki), tls_only.port)
    try:
        assert received == RESPONSE
        peer = tls.getpeercert()
        assert peer is not None and peer["subjectAltName"]  # the benchmarks' chain, verified against their root
    finally:
        tls.close()


def test_every_handshake_is_a_full_one_as_in_s5(pki: Pki, tls_only: Server) -> None:
    context = _client(pki)
    context.maximum_version = ssl.TLSVersion.TLSv1_2  # a TLS 1.2 session is offered on the next connection at once
    first, tls = _request(context, tls_only.port)
    session = tls.session
    tls.close()
    second, again = _request(context, tls_only.port, session)
    try:
        assert first == second == RESPONSE
        assert not again.session_reused  # no ticket, no session cache: S5's settings
    finally:
        again.close()


def test_curl_gets_the_answer(tls_only: Server) -> None:
    result = subprocess.run(
        ["curl", "-sk", "--max-time", "5", "-i", f"https://127.0.0.1:{tls_only.port}/"],
        capture_output=True,
        timeout=10,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == RESPONSE


def test_the_split_is_the_difference_of_the_medians() -> None:
    figures = {
        "nginx": Figures(1700.0, 575.0),
        "floor": Figures(1710.0, 577.5),
        "gateway": Figures(1400.0, 690.0),
        "tls-only": Figures(1690.0, 582.0),
    }
    assert split_lines(figures) == [
        "the gateway's TLS layers beyond the floor (tls-only - floor): +4.5 us",
        "its HTTP/proxy path (gateway - tls-only): +108.0 us",
    ]
    del figures["tls-only"]  # the plain run has no tls-only server
    assert split_lines(figures) == ["the gateway beyond the floor (gateway - floor): +112.5 us"]


def test_serving_needs_a_certificate(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["--serve", "8443"])
