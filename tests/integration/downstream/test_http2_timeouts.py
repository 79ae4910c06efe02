"""HTTP/2 timers (``H2Connection`` rule 4): a stream's body timeout, the idle connection's close."""

from __future__ import annotations

import pathlib
import signal
import time

from h2.errors import ErrorCodes
from hyperframe.frame import DataFrame, GoAwayFrame, HeadersFrame, RstStreamFrame

from tests.fixtures.admin_client import Admin
from tests.fixtures.gateway_process import make_gateway
from tests.fixtures.ports import free_port
from tests.integration.downstream.conftest import TIMEOUT
from tests.integration.downstream.rawh2 import RawH2
from tests.integration.downstream.upstream import running_upstream


def test_body_timeout_resets_the_stream_logs_408_and_keeps_the_connection(tmp_path: pathlib.Path) -> None:
    with running_upstream() as upstream:
        gw = make_gateway(tmp_path, {"KONG_CLIENT_BODY_TIMEOUT": "1s", "KONG_KEEPALIVE_TIMEOUT": "3s"})
        port = free_port()
        gw.env["KONG_PROXY_LISTEN"] = f"127.0.0.1:{gw.proxy_port}, 127.0.0.1:{port} http2 ssl"
        gw.start()
        try:
            admin = Admin(gw)
            admin.post("/services", {"name": "up", "url": f"http://127.0.0.1:{upstream}"})
            admin.post("/services/up/routes", {"name": "r", "paths": ["/"]})
            admin.close()
            client = RawH2(port)
            # a route that answers (the config reached the proxy) on stream 1
            deadline = time.monotonic() + TIMEOUT
            sid = 1
            while True:
                client.send([client.request(sid)])
                status = client.status_of(sid)
                if status == b"200":
                    break
                assert time.monotonic() < deadline
                sid += 2
            # a body that stops halfway: the stream is reset after client_body_timeout, the connection stays
            sid += 2
            head = HeadersFrame(sid)
            head.data = client.encoder.encode(
                [
                    (":method", "POST"),
                    (":scheme", "https"),
                    (":authority", "localhost"),
                    (":path", "/stalled"),
                    ("content-length", "10"),
                ]
            )
            head.flags.add("END_HEADERS")
            data = DataFrame(sid)
            data.data = b"12345"
            started = time.monotonic()
            client.send([head, data])
            while True:
                frame = client.next_frame()
                assert frame is not None, "the connection closed instead of the stream"
                if isinstance(frame, RstStreamFrame) and frame.stream_id == sid:
                    assert frame.error_code == ErrorCodes.CANCEL
                    break
            assert 0.9 < time.monotonic() - started < TIMEOUT
            client.send([client.request(sid + 2)])
            assert client.status_of(sid + 2) == b"200"
            # then idle: GOAWAY NO_ERROR after keepalive_timeout
            idle_from = time.monotonic()
            frame = client.next_frame()
            while frame is not None and not isinstance(frame, GoAwayFrame):
                frame = client.next_frame()
            assert isinstance(frame, GoAwayFrame) and frame.error_code == ErrorCodes.NO_ERROR
            assert 2.5 < time.monotonic() - idle_from < TIMEOUT
            deadline = time.monotonic() + TIMEOUT
            while '"POST /stalled HTTP/2.0" 408 0 ' not in gw.access_log.read_text():
                assert time.monotonic() < deadline, "no 408 line"
                time.sleep(0.05)
        finally:
            assert gw.stop() == 0


def test_a_graceful_stop_says_goaway_to_an_idle_http2_connection(tmp_path: pathlib.Path) -> None:
    gw = make_gateway(tmp_path)
    port = free_port()
    gw.env["KONG_PROXY_LISTEN"] = f"127.0.0.1:{gw.proxy_port}, 127.0.0.1:{port} http2 ssl"
    gw.start()
    try:
        client = RawH2(port)
        client.send([client.request(1)])
        assert client.status_of(1) == b"404"  # no route: Kong's 404, and the connection stays open
        gw.signal(signal.SIGTERM)
        frame = client.next_frame()
        while frame is not None and not isinstance(frame, GoAwayFrame):
            frame = client.next_frame()
        assert isinstance(frame, GoAwayFrame) and frame.error_code == ErrorCodes.NO_ERROR
        assert client.next_frame() is None  # then closed
    finally:
        assert gw.stop() == 0
