"""nginx-style error log: the lines Kong users grep for, byte for byte.

Format (nginx ``ngx_log_error_core`` plus Kong's ``lua_kong_error_log_request_id``)::

    2025/01/01 12:00:00 [error] 1234#0: *56 <message>, client: 127.0.0.1, server: kong, \
request: "GET / HTTP/1.1", upstream: "https://127.0.0.1:16799/", host: "example2.com", request_id: "<32 hex>"

``*56`` is the connection number and appears only for lines about a connection; the request context suffix
is built by ``request_context`` and appears only for lines about a request.

Levels are nginx's (``debug`` ... ``emerg``). Callers on the hot path guard debug/info lines with the
precomputed booleans (``if log.debug_enabled: log.debug(...)``) so that no string is formatted below the
configured level. Lines are written unbuffered, as nginx does, so a test can read a line as soon as the
event that caused it has happened.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from typing import IO, Any

__all__ = ["LEVELS", "ErrorLog", "request_context"]

LEVELS: dict[str, int] = {
    "debug": 8,
    "info": 7,
    "notice": 6,
    "warn": 5,
    "error": 4,
    "crit": 3,
    "alert": 2,
    "emerg": 1,
}


def request_context(
    client: str,
    request_line: str | None = None,
    upstream: str | None = None,
    host: str | None = None,
    request_id: str | None = None,
    server: str = "kong",
) -> str:
    """The ``, client: ..., server: kong, request: "..."...`` suffix nginx appends to request lines."""
    parts = [f", client: {client}, server: {server}"]
    if request_line is not None:
        parts.append(f', request: "{request_line}"')
    if upstream is not None:
        parts.append(f', upstream: "{upstream}"')
    if host is not None:
        parts.append(f', host: "{host}"')
    if request_id is not None:
        parts.append(f', request_id: "{request_id}"')
    return "".join(parts)


class _Clock:
    """The ``YYYY/MM/DD HH:MM:SS`` stamp, formatted at most once a second."""

    __slots__ = ("_second", "_text")

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._text = time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(second))
        return self._text


class ErrorLog:
    """One error log destination (a file under the prefix, or stderr) with nginx's level filter."""

    __slots__ = (
        "_clock",
        "_file",
        "_owns_file",
        "_pid_tag",
        "crit_enabled",
        "debug_enabled",
        "error_enabled",
        "info_enabled",
        "level",
        "notice_enabled",
        "path",
        "threshold",
        "warn_enabled",
    )

    def __init__(self, path: str | None, level: str = "notice", stream: IO[str] | None = None) -> None:
        """``path=None`` writes to ``stream`` (default stderr), as nginx does before its log is open."""
        self.path = path
        self._clock = _Clock()
        self._pid_tag = f"{os.getpid()}#0"
        if path is not None:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            self._file: IO[str] = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
            self._owns_file = True
        else:
            self._file = stream if stream is not None else sys.stderr
            self._owns_file = False
        self.set_level(level)

    def set_level(self, level: str) -> None:
        self.level = level
        self.threshold = LEVELS[level]
        self.debug_enabled = self.threshold >= LEVELS["debug"]
        self.info_enabled = self.threshold >= LEVELS["info"]
        self.notice_enabled = self.threshold >= LEVELS["notice"]
        self.warn_enabled = self.threshold >= LEVELS["warn"]
        self.error_enabled = self.threshold >= LEVELS["error"]
        self.crit_enabled = self.threshold >= LEVELS["crit"]

    def enabled(self, level: str) -> bool:
        return LEVELS[level] <= self.threshold

    def log(self, level: str, message: str, conn: int | None = None, context: str = "") -> None:
        """Write one line if ``level`` passes the filter. ``context`` is a ``request_context`` suffix."""
        if LEVELS[level] > self.threshold:
            return
        conn_part = f"*{conn} " if conn is not None else ""
        line = f"{self._clock.now()} [{level}] {self._pid_tag}: {conn_part}{message}{context}\n"
        try:
            self._file.write(line)
        except (OSError, ValueError):  # a full disk or a closed stream must never break the caller
            pass

    def debug(self, message: str, conn: int | None = None, context: str = "") -> None:
        self.log("debug", message, conn, context)

    def info(self, message: str, conn: int | None = None, context: str = "") -> None:
        self.log("info", message, conn, context)

    def notice(self, message: str, conn: int | None = None, context: str = "") -> None:
        self.log("notice", message, conn, context)

    def warn(self, message: str, conn: int | None = None, context: str = "") -> None:
        self.log("warn", message, conn, context)

    def error(self, message: str, conn: int | None = None, context: str = "") -> None:
        self.log("error", message, conn, context)

    def crit(self, message: str, conn: int | None = None, context: str = "") -> None:
        self.log("crit", message, conn, context)

    def loop_exception(self, loop: Any, context: dict[str, Any]) -> None:
        """The event loop's exception handler: an exception no callback caught goes here, never to stderr.

        It is a bug of ours (every expected failure is handled where it happens), so it is logged at ``alert``
        with its traceback, as Kong logs a Lua error with its stack traceback.
        """
        exc = context.get("exception")
        message = context.get("message") or "unhandled exception"
        if isinstance(exc, BaseException):
            trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
            self.log("alert", f"{message}: {exc!r}\n{trace}")
        else:
            self.log("alert", str(message))

    def reopen(self) -> None:
        """Reopen the file (log rotation on SIGUSR1 / SIGHUP), as nginx does."""
        if self._owns_file and self.path is not None:
            old = self._file
            self._file = open(self.path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
            old.close()

    def close(self) -> None:
        if self._owns_file:
            self._file.close()
