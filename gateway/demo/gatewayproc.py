"""The gateway the demo drives: ``python -m gateway start`` in a temp prefix, on free loopback ports.

Readiness is the gateway's own word (``Gateway started`` on its output) and a configuration change is live when
the error log says ``[runtime] configuration version <n> is live`` (``log_level = debug``), the event Kong's own
specs wait for; both are polled with a deadline, never guessed with a fixed delay.

The settings are written to ``gateway.conf`` in the demo's directory. ``allow_debug_header`` is passed as
``KONG_ALLOW_DEBUG_HEADER=on`` rather than in the file: a gateway that does not know the setting yet warns about an
unknown ``KONG_*`` variable and runs, where an unknown key in the file would stop it. The user's own ``KONG_*``
variables are not passed on: the demo is the same everywhere.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

from gateway.demo.ports import free_port

__all__ = ["DemoGateway", "GatewayError", "free_port"]

START_TIMEOUT: Final = 30.0
LIVE_TIMEOUT: Final = 15.0
STOP_TIMEOUT: Final = 15.0
POLL: Final = 0.02  # between two reads of a file we wait on (the event is in the file; this is the re-read pace)
LIVE = re.compile(rb"\[runtime\] configuration version (\d+) is live")


class GatewayError(RuntimeError):
    """The gateway did not start, stop or apply a change in time; the message carries its output's tail."""


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


class DemoGateway:
    """One gateway process at a time in ``directory``; ``restart`` keeps the ports and the SQLite store."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.prefix = directory / "prefix"
        self.conf = directory / "gateway.conf"
        self.output = directory / "gateway.out"
        self.proxy_port, self.proxy_ssl_port, self.admin_port = free_port(), free_port(), free_port()
        self.extra: dict[str, str] = {}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def error_log(self) -> Path:
        return self.prefix / "logs" / "error.log"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def _write_conf(self) -> None:
        settings = {
            "proxy_listen": f"127.0.0.1:{self.proxy_port}, 127.0.0.1:{self.proxy_ssl_port} ssl",
            "admin_listen": f"127.0.0.1:{self.admin_port}",
            "log_level": "debug",
            "worker_processes": "1",
            "debug_tls_errors": "on",
            **self.extra,
        }
        self.conf.write_text("".join(f"{key} = {value}\n" for key, value in settings.items()))

    def start(self) -> None:
        self._write_conf()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KONG_")}
        env["KONG_ALLOW_DEBUG_HEADER"] = "on"
        command = [sys.executable, "-m", "gateway", "start", "-p", str(self.prefix), "-c", str(self.conf)]
        with open(self.output, "ab") as out:
            self.proc = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )
        start_mark = self.output.read_bytes().count(b"Gateway started")
        deadline = time.monotonic() + START_TIMEOUT
        while self.output.read_bytes().count(b"Gateway started") <= start_mark:
            if self.proc.poll() is not None:
                raise GatewayError(f"the gateway exited with {self.proc.returncode}:\n{_tail(self.output)}")
            if time.monotonic() > deadline:
                raise GatewayError(f"the gateway did not start in {START_TIMEOUT:.0f}s:\n{_tail(self.output)}")
            time.sleep(POLL)

    def stop(self) -> None:
        """SIGTERM (the gateway drains and exits), then SIGKILL if it does not within ``STOP_TIMEOUT``."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart(self, **extra: str) -> None:
        """Stop, add settings, start again (the store and its entities are kept in the prefix)."""
        self.stop()
        self.extra.update(extra)
        self.start()

    def live_version(self) -> int:
        """The newest configuration version the runtime reported live (0 before the first)."""
        try:
            found = LIVE.findall(self.error_log.read_bytes())
        except OSError:
            return 0
        return max((int(v) for v in found), default=0)

    def wait_live_after(self, version: int) -> None:
        deadline = time.monotonic() + LIVE_TIMEOUT
        while self.live_version() <= version:
            if time.monotonic() > deadline:
                raise GatewayError(f"a configuration change was not live in {LIVE_TIMEOUT:.0f}s")
            time.sleep(POLL)

    def error_lines_since(self, offset: int) -> tuple[list[str], int]:
        """Error-log lines written after byte ``offset``, and the new offset."""
        try:
            data = self.error_log.read_bytes()
        except OSError:
            return [], offset
        return data[offset:].decode(errors="replace").splitlines(), len(data)
