"""Drive the real ``gateway`` process like Kong's specs do: Admin API writes, then proxied requests.

``KongClient.write`` performs one Admin API write and waits until the proxy runs a configuration that includes
it: the store's version grows by one per committed write, and at ``log_level = debug`` the runtime logs
``[runtime] configuration version <n> is live`` after each swap (an event read from the log, bounded in time;
Kong's specs poll ``wait_for_all_config_update`` for the same reason).
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx

from tests.fixtures.gateway_process import GatewayProcess

LIVE = re.compile(r"\[runtime\] configuration version (\d+) is live")
CONFIG_TIMEOUT = 10.0

# nginx's error-log line prefix: time, level, pid, connection number
LINE_PREFIX = r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[%s\] \d+#0: \*\d+ "


def tls_line(message: str, port: int, host: str, request_id: str = "[0-9a-f]{32}", level: str = "error") -> str:
    """The regex of one upstream TLS failure line, verbatim except for time, pid, connection and request id."""
    return (
        "^"
        + LINE_PREFIX % level
        + re.escape(f"{message} while SSL handshaking to upstream, client: 127.0.0.1, server: kong, ")
        + re.escape(f'request: "GET / HTTP/1.1", upstream: "https://127.0.0.1:{port}/", host: "{host}", ')
        + f'request_id: "{request_id}"$'
    )


class KongClient:
    """Admin and proxy clients for one running gateway."""

    def __init__(self, gw: GatewayProcess) -> None:
        self.gw = gw
        self.admin = httpx.Client(base_url=gw.admin_url, timeout=10)
        self.proxy = httpx.Client(base_url=gw.proxy_url, timeout=30)
        self.version = 0

    def close(self) -> None:
        self.admin.close()
        self.proxy.close()

    def write(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One Admin API write that must succeed; returns the entity (``{}`` for a delete)."""
        res = self.admin.request(method, path, json=body)
        assert res.status_code in (200, 201, 204), f"{method} {path}: {res.status_code} {res.text}"
        self.version += 1
        self.wait_live(self.version)
        return res.json() if res.status_code != 204 else {}

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.write("POST", path, body)

    def patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.write("PATCH", path, body)

    def wait_live(self, version: int) -> None:
        deadline = time.monotonic() + CONFIG_TIMEOUT
        while True:
            text = self.gw.error_log.read_text() if self.gw.error_log.exists() else ""
            if any(int(v) >= version for v in LIVE.findall(text)):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"configuration version {version} never went live:\n{text[-3000:]}")
            time.sleep(0.005)  # back-off between reads of the log, not a readiness guess

    def get(self, host: str, path: str = "/") -> httpx.Response:
        return self.proxy.get(path, headers={"Host": host})

    def error_lines(self) -> list[str]:
        return self.gw.error_log.read_text().splitlines()

    def mark(self) -> int:
        """The number of error-log lines so far, to look only at what a step adds."""
        return len(self.error_lines())

    def lines_since(self, mark: int) -> list[str]:
        return self.error_lines()[mark:]
