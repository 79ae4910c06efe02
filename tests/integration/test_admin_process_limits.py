"""The real ``gateway`` process: the Admin API's body limit and timeouts (with shortened settings), the descriptors
they give back, and a store whose SQLite file is removed or replaced while the gateway runs."""

from __future__ import annotations

import os
import pathlib
import re
import socket
import sqlite3
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures.gateway_process import GatewayProcess, make_gateway

TIMEOUTS = {"KONG_CLIENT_HEADER_TIMEOUT": "1s", "KONG_CLIENT_BODY_TIMEOUT": "1s", "KONG_KEEPALIVE_TIMEOUT": "1s"}
MIB = 1024 * 1024


@pytest.fixture
def gateway(tmp_path: pathlib.Path) -> Iterator[GatewayProcess]:
    gw = make_gateway(tmp_path, TIMEOUTS).start()
    try:
        yield gw
    finally:
        assert gw.stop() == 0
        assert "Traceback" not in gw.drain_output()


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _status_kib(pid: int, field: str) -> int:
    text = pathlib.Path(f"/proc/{pid}/status").read_text()
    found = re.search(rf"^{field}:\s+(\d+) kB$", text, re.M)
    assert found is not None, field
    return int(found[1])


def _until(condition: object, timeout: float = 10.0) -> bool:
    """Poll ``condition()`` until it is true or ``timeout`` passes (the kernel's view of the process changes
    asynchronously; this waits for an event, it does not stand in for one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.01)
    return False


def test_bodies_over_10_mib_are_refused_without_being_held(gateway: GatewayProcess) -> None:
    """The reproducer: 20 MB created a service and 100 MB were read and parsed. Now both framings get nginx's 413
    (and its error line) and the master's peak memory grows by about the limit at most."""
    assert gateway.proc is not None
    pid = gateway.proc.pid
    pathlib.Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset the peak RSS (VmHWM) to the current RSS
    rss = _status_kib(pid, "VmRSS")
    head = b'{"name":"big","host":"big.test","tags":["'
    with httpx.Client(base_url=gateway.admin_url, timeout=60) as http:
        sized = http.post(
            "/services",
            content=head + b"x" * (100 * MIB) + b'"]}',
            headers={"Content-Type": "application/json"},
        )
        assert sized.status_code == 413
        assert sized.headers["connection"] == "close" and sized.headers["content-type"] == "text/html"
        assert "<title>413 Request Entity Too Large</title>" in sized.text

        def chunks() -> Iterator[bytes]:
            yield head
            for _ in range(100):
                yield b"x" * MIB

        chunked = http.post("/services", content=chunks(), headers={"Content-Type": "application/json"})
        assert chunked.status_code == 413 and "<title>413 Request Entity Too Large</title>" in chunked.text
        assert http.get("/services").json()["data"] == []
    growth = _status_kib(pid, "VmHWM") - rss
    assert growth < 40 * 1024, f"peak RSS grew by {growth} KiB"
    log = gateway.error_log.read_text()
    context = (
        r', client: 127\.0\.0\.1, server: kong_admin, request: "POST /services HTTP/1\.1", host: "127\.0\.0\.1:\d+"'
    )
    sent = len(head) + 100 * MIB + 3
    assert re.search(rf"\[error\] \d+#0: \*\d+ client intended to send too large body: {sent} bytes{context}\n", log)
    assert re.search(
        rf"\[error\] \d+#0: \*\d+ client intended to send too large chunked body: \d+\+\d+ bytes{context}", log
    )


def test_idle_and_half_sent_admin_connections_are_closed_and_their_descriptors_freed(gateway: GatewayProcess) -> None:
    assert gateway.proc is not None
    pid = gateway.proc.pid
    baseline = _fds(pid)
    kinds = {
        "idle": b"",
        "half-head": b"POST /services HTTP/1.1\r\nHost: admin.test\r\n",
        "half-body": b"POST /services HTTP/1.1\r\nHost: admin.test\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"name":',
        "keepalive": b"GET /status HTTP/1.1\r\nHost: admin.test\r\n\r\n",
    }
    clients: list[tuple[str, socket.socket]] = []
    for kind, data in kinds.items():
        for _ in range(10):
            sock = socket.create_connection(("127.0.0.1", gateway.admin_port), timeout=10)
            sock.sendall(data)
            clients.append((kind, sock))
    assert _until(lambda: _fds(pid) >= baseline + len(clients)), "the gateway did not accept every connection"
    for kind, sock in clients:
        received = b""
        while chunk := sock.recv(65536):  # until the gateway closes (a timeout here raises and fails the test)
            received += chunk
        sock.close()
        if kind == "keepalive":
            assert received.startswith(b"HTTP/1.1 200 OK\r\n"), received
        else:
            assert received == b"", (kind, received)
    assert _until(lambda: _fds(pid) == baseline), f"descriptors: {_fds(pid)}, baseline {baseline}"
    log = gateway.error_log.read_text()
    assert log.count("client timed out (110: Connection timed out) while waiting for request") == 10
    assert log.count("client timed out (110: Connection timed out) while reading client request headers") == 10
    access = gateway.prefix / "logs" / "admin_access.log"  # written once a second
    assert _until(lambda: access.read_text().count('"POST /services HTTP/1.1" 408 0 ') == 20), access.read_text()


def _post(http: httpx.Client, name: str) -> httpx.Response:
    return http.post("/services", json={"name": name, "host": f"{name}.test"})


def _crit(gw: GatewayProcess, what: str) -> None:
    db = re.escape(str(gw.prefix / "gateway.db"))
    assert re.search(
        rf"\[crit\] \d+#0: \*\d+ \[store\] database file {db} was {what} while in use: writes are refused, as they "
        r"would be lost at the next start \(reads are still served from the file opened at start\), "
        r'client: 127\.0\.0\.1, server: kong_admin, request: "POST /services HTTP/1\.1"',
        gw.error_log.read_text(),
    ), gw.error_log.read_text()


def _names_after_restart(tmp_path: pathlib.Path) -> list[str]:
    gw = make_gateway(tmp_path).start()  # the same prefix
    try:
        with httpx.Client(base_url=gw.admin_url, timeout=10) as http:
            return sorted(row["name"] for row in http.get("/services").json()["data"])
    finally:
        assert gw.stop() == 0


def test_a_removed_database_file_fails_writes_loudly(tmp_path: pathlib.Path) -> None:
    """Before: later writes answered 201 and were all lost at the next start. Now they are refused."""
    gw = make_gateway(tmp_path).start()
    try:
        with httpx.Client(base_url=gw.admin_url, timeout=10) as http:
            assert _post(http, "before").status_code == 201
            (gw.prefix / "gateway.db").unlink()
            for name in ("after1", "after2"):
                refused = _post(http, name)
                assert (refused.status_code, refused.json()) == (500, {"message": "An unexpected error occurred"})
            assert http.get("/services/before").status_code == 200  # reads go on from the open file
            assert http.get("/services/after1").status_code == 404  # nothing half-written
        _crit(gw, "removed")
    finally:
        assert gw.stop() == 0
    assert "Traceback" not in gw.drain_output()
    # "before" left with the file that was removed; nothing was acknowledged after that, so nothing was lost
    assert _names_after_restart(tmp_path) == []


def test_a_replaced_database_file_fails_writes_and_keeps_every_acknowledged_one(tmp_path: pathlib.Path) -> None:
    gw = make_gateway(tmp_path).start()
    path = gw.prefix / "gateway.db"
    try:
        with httpx.Client(base_url=gw.admin_url, timeout=10) as http:
            assert _post(http, "kept").status_code == 201
            copy = tmp_path / "copy.db"
            source, target = sqlite3.connect(path), sqlite3.connect(copy)
            with target:
                source.backup(target)  # a consistent copy, with what is still in -wal
            source.close()
            target.close()
            os.replace(copy, path)
            refused = _post(http, "lost")
            assert (refused.status_code, refused.json()) == (500, {"message": "An unexpected error occurred"})
        _crit(gw, "replaced by another file")
    finally:
        assert gw.stop() == 0
    assert "Traceback" not in gw.drain_output()
    assert _names_after_restart(tmp_path) == ["kept"]
