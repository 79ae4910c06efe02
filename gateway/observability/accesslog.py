"""Access logs in Kong's ``kong_log_format`` (nginx combined + the request id).

    127.0.0.1 - - [22/Nov/2026:05:01:02 +0000] "GET /x HTTP/1.1" 200 12 "-" "curl/7.88.1" kong_request_id: "<rid>"

The Admin API's log uses nginx's plain ``combined`` format (Kong's template has no format there).

Lines are buffered in memory and flushed when the buffer passes 32 KiB or on ``flush()``, which the
server calls from a once-a-second tick and at shutdown: one ``write`` per batch instead of per request
(nginx's ``access_log ... buffer=`` behaviour). ``path = off`` disables the log entirely.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

__all__ = ["AccessLog", "open_access_log"]

_FLUSH_AT = 32 * 1024


def _escape(value: str) -> str:
    """nginx escapes ``"``, ``\\`` and non-printable bytes as ``\\xHH`` in logged variables."""
    if value.isprintable() and '"' not in value and "\\" not in value:
        return value
    out = []
    for ch in value:
        code = ord(ch)
        if ch in '"\\' or code < 0x20 or code >= 0x7F:
            out.append(f"\\x{code:02X}" if code < 0x100 else ch)
        else:
            out.append(ch)
    return "".join(out)


class AccessLog:
    """One access log file, or a disabled sink when ``path`` is None."""

    __slots__ = ("_buffer", "_file", "_second", "_size", "_stamp", "enabled", "path", "with_request_id")

    def __init__(self, path: str | None, with_request_id: bool = True) -> None:
        self.path = path
        self.enabled = path is not None
        self.with_request_id = with_request_id
        self._buffer: list[str] = []
        self._size = 0
        self._second = -1
        self._stamp = ""
        if path is not None:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115

    def _time_local(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(second))
        return self._stamp

    def write(
        self,
        remote_addr: str,
        request_line: str,
        status: int,
        body_bytes_sent: int,
        referer: str | None,
        user_agent: str | None,
        request_id: str | None = None,
    ) -> None:
        if not self.enabled:
            return
        line = (
            f'{remote_addr} - - [{self._time_local()}] "{_escape(request_line)}" {status} {body_bytes_sent} '
            f'"{_escape(referer) if referer else "-"}" "{_escape(user_agent) if user_agent else "-"}"'
        )
        if self.with_request_id:
            line += f' kong_request_id: "{request_id or ""}"'
        line += "\n"
        self._buffer.append(line)
        self._size += len(line)
        if self._size >= _FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        data = "".join(self._buffer)
        self._buffer.clear()
        self._size = 0
        try:
            self._file.write(data)
            self._file.flush()
        except (OSError, ValueError):
            pass

    def reopen(self) -> None:
        if self.path is None:
            return
        self.flush()
        old = self._file
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        old.close()

    def close(self) -> None:
        if self.path is not None:
            self.flush()
            self._file.close()


def open_access_log(setting: str, resolve: Callable[[str], str], with_request_id: bool = True) -> AccessLog:
    """``off`` -> disabled; otherwise a path resolved against the prefix."""
    if setting.strip() == "off":
        return AccessLog(None, with_request_id)
    return AccessLog(resolve(setting), with_request_id)
