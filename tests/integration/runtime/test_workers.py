"""``worker_processes`` against the real ``gateway`` process: a master (Admin API, store, health checks, no proxy
listener) plus proxy-only workers on ``SO_REUSEPORT`` listeners, forked by one zygote, configured over their channel,
respawned when they die, replaced by a new generation on SIGHUP, stopped with the master; every worker resumes the
TLS sessions the others issued (shared ticket keys).

Which process served a request is read from the error log (nginx's ``<pid>#0`` in every line): a route to a
closed port makes each request log one ``connect() failed`` line from the process that handled it. Every wait
is bounded and polls an observable fact (a log line, ``/status``), never a fixed delay.
"""

from __future__ import annotations

import os
import pathlib
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import httpx
import pytest

from tests.fixtures.gateway_process import GATEWAY, GatewayProcess, make_gateway
from tests.fixtures.nginx import NginxRunner, NginxServer, nginx  # noqa: F401  (fixture)
from tests.fixtures.ports import closed_port

WORKERS = {"KONG_WORKER_PROCESSES": "2"}
UPSTREAM = """
server {
    listen 127.0.0.1:{port};
    location /slow { limit_rate 100k; alias {prefix}/slow.bin; }
    location / { return 200 "upstream ok $uri\\n"; }
}
"""
SLOW_BODY = 200 * 1024  # about 2 s at limit_rate 100k
PID_LINE = re.compile(r"\[error\] (\d+)#0: \*\d+ connect\(\) failed")


@pytest.fixture
def upstream(nginx: NginxRunner) -> NginxServer:  # noqa: F811
    return nginx.start(UPSTREAM, files={"slow.bin": b"s" * SLOW_BODY})


@pytest.fixture
def gateway(tmp_path: pathlib.Path) -> Iterator[GatewayProcess]:
    gw = make_gateway(tmp_path, WORKERS).start()
    try:
        yield gw
    finally:
        assert gw.stop() == 0


def wait_until(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout}s")
        time.sleep(0.05)


def fresh_get(port: int, path: str) -> tuple[int, bytes]:
    """One request on a new connection (so ``SO_REUSEPORT`` picks a process for each)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def status(gw: GatewayProcess) -> dict[str, Any]:
    reply = httpx.get(f"{gw.admin_url}/status", timeout=10)
    assert reply.status_code == 200
    body: dict[str, Any] = reply.json()
    return body


def pids(gw: GatewayProcess) -> list[int]:
    return [vm["pid"] for vm in status(gw)["memory"]["workers_lua_vms"]]


def admin(gw: GatewayProcess, path: str, data: dict[str, Any]) -> dict[str, Any]:
    reply = httpx.post(f"{gw.admin_url}{path}", json=data, timeout=10)
    assert reply.status_code == 201, reply.text
    body: dict[str, Any] = reply.json()
    return body


def cmdline(pid: int) -> str:
    """What ``ps`` shows for ``pid``."""
    return pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").replace(b"\0", b" ").decode()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def gone(pid: int) -> bool:
    return not alive(pid)


def logged(gw: GatewayProcess, text: str, times: int = 1) -> bool:
    """``text`` is in the gateway's error log at least ``times`` times."""
    return gw.error_log.read_text().count(text) >= times


def served_by(gw: GatewayProcess, requests: int) -> list[int]:
    """The pid that logged each ``connect() failed`` line, once ``requests`` of them are in the error log."""

    def found() -> list[int] | None:
        pids = [int(m.group(1)) for m in PID_LINE.finditer(gw.error_log.read_text())]
        return pids if len(pids) >= requests else None

    return list(wait_until(found, what=f"{requests} connect() failed lines"))


def test_the_workers_serve_the_master_does_not_and_status_sums_their_counters(gateway: GatewayProcess) -> None:
    workers = pids(gateway)
    master = gateway.proc.pid  # type: ignore[union-attr]
    assert len(workers) == 2 and master not in workers
    info = httpx.get(f"{gateway.admin_url}/", timeout=10).json()
    assert info["pids"] == {"master": master, "workers": workers}
    # ps tells the processes apart as it does nginx's
    assert cmdline(master).startswith("gateway: master process ")
    assert [cmdline(pid) for pid in workers] == ["gateway: worker process"] * 2
    admin(gateway, "/services", {"name": "down", "url": f"http://127.0.0.1:{closed_port()}/"})
    admin(gateway, "/services/down/routes", {"paths": ["/down"]})
    requests = 40
    for _ in range(requests):
        assert fresh_get(gateway.proxy_port, "/down")[0] == 502

    assert set(served_by(gateway, requests)) == set(workers)  # 40 fresh connections: both workers, never the master
    server = status(gateway)["server"]
    assert server["total_requests"] == requests
    assert server["connections_accepted"] == server["connections_handled"] == requests


def test_an_admin_write_is_live_in_every_process_when_it_answers(
    gateway: GatewayProcess,
    upstream: NginxServer,
) -> None:
    admin(gateway, "/services", {"name": "up", "url": f"http://127.0.0.1:{upstream.port}"})
    for n in range(5):
        admin(gateway, "/services/up/routes", {"paths": [f"/new{n}"], "strip_path": False})
        answers = [fresh_get(gateway.proxy_port, f"/new{n}") for _ in range(20)]
        assert [code for code, _ in answers] == [200] * 20, answers
        assert answers[0][1] == f"upstream ok /new{n}\n".encode()


def test_sigterm_drains_every_process_and_leaves_no_worker(tmp_path: pathlib.Path, upstream: NginxServer) -> None:
    gw = make_gateway(tmp_path, WORKERS).start()
    try:
        serving = pids(gw)
        admin(gw, "/services", {"name": "slow", "url": f"http://127.0.0.1:{upstream.port}"})
        admin(gw, "/services/slow/routes", {"paths": ["/slow"], "strip_path": False})
        results: list[tuple[int, int]] = []

        def fetch() -> None:
            code, body = fresh_get(gw.proxy_port, "/slow")
            results.append((code, len(body)))

        threads = [threading.Thread(target=fetch) for _ in range(8)]
        for thread in threads:
            thread.start()
        wait_until(lambda: status(gw)["server"]["connections_writing"] >= 8, what="8 requests in flight")
    except BaseException:
        gw.stop()
        raise
    code = gw.stop()
    for thread in threads:
        thread.join(15)
    assert code == 0
    assert sorted(results) == [(200, SLOW_BODY)] * 8
    assert not any(alive(pid) for pid in serving)
    assert f"worker process {serving[0]} exited with code 0" in gw.error_log.read_text()


def test_a_killed_worker_is_respawned_and_traffic_keeps_flowing(
    gateway: GatewayProcess,
    upstream: NginxServer,
) -> None:
    admin(gateway, "/services", {"name": "up", "url": f"http://127.0.0.1:{upstream.port}"})
    admin(gateway, "/services/up/routes", {"paths": ["/"]})
    master = gateway.proc.pid  # type: ignore[union-attr]
    worker, sibling = pids(gateway)
    os.kill(worker, signal.SIGKILL)
    # the master keeps the dead worker's listening sockets open: connections the kernel queues there meanwhile wait
    # for its successor instead of being reset, so every request below is answered
    alert = f"[alert] {master}#0: worker process {worker} exited on signal 9"
    wait_until(lambda: alert in gateway.error_log.read_text(), what="the master's alert")
    assert not alive(worker)
    assert [fresh_get(gateway.proxy_port, "/a")[0] for _ in range(20)] == [200] * 20
    respawned = wait_until(
        lambda: [p for p in pids(gateway) if p not in (master, worker, sibling)], what="a new worker"
    )
    # the new worker has the configuration: every fresh connection is routed
    assert [fresh_get(gateway.proxy_port, "/b")[0] for _ in range(20)] == [200] * 20
    admin(gateway, "/services/up/routes", {"paths": ["/later"], "name": "later"})
    assert [fresh_get(gateway.proxy_port, "/later")[0] for _ in range(20)] == [200] * 20
    assert respawned[0] in pids(gateway)


def test_forced_health_reaches_every_process(gateway: GatewayProcess, upstream: NginxServer) -> None:
    admin(gateway, "/upstreams", {"name": "pool", "healthchecks": {"passive": {"unhealthy": {"tcp_failures": 3}}}})
    admin(gateway, "/upstreams/pool/targets", {"target": f"127.0.0.1:{upstream.port}"})
    admin(gateway, "/services", {"name": "balanced", "host": "pool"})
    admin(gateway, "/services/balanced/routes", {"paths": ["/"]})
    assert [fresh_get(gateway.proxy_port, "/")[0] for _ in range(20)] == [200] * 20
    target = f"{gateway.admin_url}/upstreams/pool/targets/127.0.0.1:{upstream.port}"
    for word, expected in (("unhealthy", 503), ("healthy", 200)):
        assert httpx.put(f"{target}/{word}", timeout=10).status_code == 204

        # Kong propagates forced health with worker events, asynchronously: poll (bounded) until all agree
        def agreed(expected: int = expected) -> bool:
            return [fresh_get(gateway.proxy_port, "/")[0] for _ in range(20)] == [expected] * 20

        wait_until(agreed, what=f"every process answering {expected}")


def test_sighup_reconfigures_every_process(tmp_path: pathlib.Path, upstream: NginxServer) -> None:
    declarative = tmp_path / "kong.yml"

    def write(path: str) -> None:
        declarative.write_text(
            "_format_version: '3.0'\n"
            "services:\n"
            f"- name: up\n  url: http://127.0.0.1:{upstream.port}\n"
            f"  routes:\n  - name: r\n    paths: [{path}]\n    strip_path: false\n"
        )

    write("/before")
    gw = make_gateway(tmp_path, {**WORKERS, "KONG_DATABASE": "off", "KONG_DECLARATIVE_CONFIG": str(declarative)})
    gw.start()
    try:
        old = pids(gw)
        assert [fresh_get(gw.proxy_port, "/before")[0] for _ in range(20)] == [200] * 20
        write("/after")
        gw.signal(signal.SIGHUP)
        wait_until(lambda: "reconfiguration done" in gw.error_log.read_text(), what="the reload")
        assert [fresh_get(gw.proxy_port, "/after")[0] for _ in range(20)] == [200] * 20
        assert [fresh_get(gw.proxy_port, "/before")[0] for _ in range(20)] == [404] * 20
        # as an nginx reload: a new generation of workers, the old one drains and exits
        new = pids(gw)
        assert len(new) == 2 and not set(new) & set(old)
        for pid in old:
            wait_until(partial(logged, gw, f"worker process {pid} exited with code 0"))
    finally:
        assert gw.stop() == 0


def test_a_second_gateway_cannot_share_the_port(gateway: GatewayProcess, tmp_path: pathlib.Path) -> None:
    other = make_gateway(tmp_path / "two", {**WORKERS, "KONG_PROXY_LISTEN": f"127.0.0.1:{gateway.proxy_port}"})
    out = subprocess.run(
        [GATEWAY, "start", "-p", str(other.prefix)], env=other.env, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 1
    assert f"could not listen on 127.0.0.1:{gateway.proxy_port}" in out.stderr


def s_client_request(port: int, *extra: str) -> str:
    """``openssl s_client`` sending one request and reading the answer (so TLS 1.3 tickets have arrived)."""
    args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "tickets.test", "-ign_eof"]
    request = b"GET /down HTTP/1.1\r\nHost: tickets.test\r\nConnection: close\r\n\r\n"
    done = subprocess.run([*args, *extra], input=request, capture_output=True, timeout=15)
    return done.stdout.decode("latin-1")


def client_context(version: ssl.TLSVersion) -> ssl.SSLContext:
    """One client context per test: Python's ``ssl`` offers a session only through the context that made it."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = version
    return ctx


def tls_get(
    ctx: ssl.SSLContext, port: int, path: str, session: ssl.SSLSession | None
) -> tuple[bool, ssl.SSLSession | None]:
    """One HTTPS request on a new connection offering ``session``; (resumed?, the session to offer next)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with ctx.wrap_socket(raw, server_hostname="tickets.test", session=session) as tls:
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: tickets.test\r\nConnection: close\r\n\r\n".encode())
        while tls.recv(65536):  # TLS 1.3 tickets arrive after the handshake: read to the end
            pass
        return bool(tls.session_reused), tls.session


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2], ids=["tls1.3", "tls1.2"])
def test_every_worker_resumes_the_sessions_another_issued(tmp_path: pathlib.Path, version: ssl.TLSVersion) -> None:
    gw = make_gateway(tmp_path, WORKERS, ssl=True).start()
    try:
        port = gw.proxy_ssl_port
        assert port is not None
        workers = pids(gw)
        admin(gw, "/services", {"name": "down", "url": f"http://127.0.0.1:{closed_port()}/"})
        admin(gw, "/services/down/routes", {"paths": ["/down"]})
        ctx = client_context(version)
        reused, session = tls_get(ctx, port, "/down", None)
        assert not reused
        attempts = 24
        resumed = [tls_get(ctx, port, "/down", session)[0] for _ in range(attempts)]
        # each connection logged one line with the pid of the worker that served it: both workers took part
        serving = served_by(gw, attempts + 1)
        assert set(serving[1:]) == set(workers), serving
        assert resumed == [True] * attempts
        # a peer nobody here wrote: openssl s_client, session saved once, offered again on new connections
        saved = tmp_path / "session.pem"
        flag = "-tls1_3" if version is ssl.TLSVersion.TLSv1_3 else "-tls1_2"
        first = s_client_request(port, flag, "-sess_out", str(saved))
        assert "New, TLSv1." in first and "HTTP/1.1 502" in first
        again = [s_client_request(port, flag, "-sess_in", str(saved)) for _ in range(8)]
        assert [("Reused, TLSv1." in out, "HTTP/1.1 502" in out) for out in again] == [(True, True)] * 8
    finally:
        assert gw.stop() == 0


def test_sighup_draws_new_ticket_keys_for_the_new_generation(tmp_path: pathlib.Path) -> None:
    gw = make_gateway(tmp_path, WORKERS, ssl=True).start()
    try:
        port = gw.proxy_ssl_port
        assert port is not None
        admin(gw, "/services", {"name": "down", "url": f"http://127.0.0.1:{closed_port()}/"})
        admin(gw, "/services/down/routes", {"paths": ["/down"]})
        ctx = client_context(ssl.TLSVersion.TLSv1_3)
        _, before = tls_get(ctx, port, "/down", None)
        assert tls_get(ctx, port, "/down", before)[0]
        gw.signal(signal.SIGHUP)
        wait_until(lambda: "reconfiguration done" in gw.error_log.read_text(), what="the reload")
        # nginx's reload: tickets of the old generation no longer resume; the new generation shares its own keys
        reused, after = tls_get(ctx, port, "/down", before)
        assert not reused
        assert [tls_get(ctx, port, "/down", after)[0] for _ in range(12)] == [True] * 12
    finally:
        assert gw.stop() == 0


def zygote_of(master: int) -> int:
    """The master's zygote child (titled ``gateway: zygote process``), from /proc."""
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == master and argv[0] == b"gateway: zygote process":
            return int(entry.name)
    raise AssertionError(f"no zygote child of {master}")


def test_a_killed_zygote_is_replaced_with_a_new_worker_generation(
    gateway: GatewayProcess, upstream: NginxServer
) -> None:
    admin(gateway, "/services", {"name": "up", "url": f"http://127.0.0.1:{upstream.port}"})
    admin(gateway, "/services/up/routes", {"paths": ["/"]})
    master = gateway.proc.pid  # type: ignore[union-attr]
    old = pids(gateway)
    zygote = zygote_of(master)
    os.kill(zygote, signal.SIGKILL)
    wait_until(lambda: "worker zygote process exited on signal 9" in gateway.error_log.read_text(), what="alert")
    # the old workers (orphans now) are retired: a new generation from a new zygote, so keys agree again
    new = wait_until(lambda: [p for p in pids(gateway) if p not in old], what="new workers")
    wait_until(lambda: len(pids(gateway)) == 2 and not set(pids(gateway)) & set(old), what="a whole new generation")
    assert zygote_of(master) != zygote
    for pid in old:
        wait_until(partial(gone, pid), what=f"old worker {pid} gone")
    assert new[0] in pids(gateway)
    assert [fresh_get(gateway.proxy_port, "/z")[0] for _ in range(20)] == [200] * 20


def more_traffic(results: list[int | str], count: int = 50) -> None:
    """Until ``count`` more requests have been answered (or failed)."""
    start = len(results)
    wait_until(lambda: len(results) >= start + count, what=f"{count} more requests")


def fresh_tls_get(port: int, path: str) -> tuple[int, bytes]:
    """One HTTPS request on a new connection (full handshake)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    chunks = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, ctx.wrap_socket(raw) as tls:
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode())
        while data := tls.recv(65536):
            chunks.append(data)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_reloads_under_load_lose_no_connection(tmp_path: pathlib.Path, upstream: NginxServer, scheme: str) -> None:
    """SIGHUP replaces every worker while clients open a connection per request: the master keeps the slots'
    listening sockets (nothing queued is reset) and an old worker drains what it accepted, handshakes included."""
    gw = make_gateway(tmp_path, WORKERS, ssl=scheme == "https").start()
    port = gw.proxy_ssl_port if scheme == "https" else gw.proxy_port
    get = fresh_tls_get if scheme == "https" else fresh_get
    assert port is not None
    try:
        admin(gw, "/services", {"name": "up", "url": f"http://127.0.0.1:{upstream.port}"})
        admin(gw, "/services/up/routes", {"paths": ["/"]})
        results: list[int | str] = []
        done = threading.Event()

        def load() -> None:
            while not done.is_set():
                try:
                    results.append(get(port, "/load")[0])
                except (OSError, IndexError) as exc:  # reset, or closed without an answer
                    results.append(repr(exc))

        clients = [threading.Thread(target=load) for _ in range(4)]
        for client in clients:
            client.start()
        try:
            generations = [pids(gw)]
            for reload in range(3):
                more_traffic(results)
                gw.signal(signal.SIGHUP)
                wait_until(partial(logged, gw, "reconfiguration done", times=reload + 1), what="the reload")
                generations.append(pids(gw))
            more_traffic(results)
        finally:
            done.set()
            for client in clients:
                client.join(15)
        assert len({pid for generation in generations for pid in generation}) == 8  # 4 generations of 2
        assert len(results) >= 200
        assert [r for r in results if r != 200] == []
    finally:
        assert gw.stop() == 0
