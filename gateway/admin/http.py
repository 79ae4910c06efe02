"""The Admin API's request and response values, independent of any socket.

A ``Request`` is what the HTTP server parsed; a ``Response`` is what a handler decided. Keeping both plain
lets ``AdminApp.handle`` run in tests without sockets and keeps the h11 server a thin byte shuttle.

Response bodies follow Kong's ``kong.response.exit``: a dict becomes JSON (``application/json;
charset=utf-8``), ``None`` is an empty body with ``Content-Length: 0``. Statuses that Kong answers with
nginx's own error page (415, 411 ...) carry that HTML page, byte for byte, so clients see what nginx sends.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from gateway.downstream.headers import first_value

__all__ = [
    "JSON_TYPE",
    "REASONS",
    "Request",
    "Response",
    "json_response",
    "message",
    "nginx_error_page",
]

JSON_TYPE = "application/json; charset=utf-8"

REASONS: dict[int, str] = {
    200: "OK",
    201: "Created",
    204: "No Content",
    304: "Not Modified",
    400: "Bad Request",
    404: "Not Found",
    405: "Not Allowed",
    408: "Request Time-out",
    409: "Conflict",
    411: "Length Required",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
    501: "Not Implemented",
}


@dataclass(slots=True)
class Request:
    """One parsed request. ``path`` is the raw (still percent-encoded) path; ``query`` the raw query string.

    ``line`` (the request line) and ``conn`` (the connection number) are for error-log lines about the request.
    """

    method: str
    path: str
    query: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    remote_addr: str = "127.0.0.1"
    line: str = ""
    conn: int | None = None

    def header(self, name: str) -> str | None:
        """The first value of a header (case-insensitive), or None."""
        return first_value(self.headers, name)

    def header_values(self, name: str) -> list[str]:
        """Every value of a header: Kong refuses some headers when they are repeated."""
        lname = name.lower()
        return [value for key, value in self.headers if key.lower() == lname]


@dataclass(slots=True)
class Response:
    """What the Admin API answers: a status, extra headers and the body bytes."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    def json(self) -> Any:
        """Decode the body (tests and callers that re-use a response)."""
        return json.loads(self.body) if self.body else None

    def header(self, name: str) -> str | None:
        return first_value(self.headers, name)


def _encode(value: Any) -> bytes:
    # cjson escapes "/" as "\/"; JSON parsers read both forms the same, so we keep the plain one.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def json_response(status: int, body: Any | None = None, headers: list[tuple[str, str]] | None = None) -> Response:
    """``kong.response.exit(status, body)``: JSON when there is a body, empty otherwise."""
    extra = list(headers or [])
    if body is None:
        return Response(status, b"", extra)
    return Response(status, _encode(body), [("Content-Type", JSON_TYPE), *extra])


def message(status: int, text: str) -> Response:
    """``{"message": text}`` with ``status``: Kong's shape for every non-entity error."""
    return json_response(status, {"message": text})


def nginx_error_page(status: int) -> Response:
    """nginx's built-in error page, which Kong sends when a handler exits with a status and no body."""
    title = f"{status} {REASONS.get(status, '')}".rstrip()
    page = (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
        "<hr><center>openresty</center>\r\n</body>\r\n</html>\r\n"
    )
    return Response(status, page.encode("ascii"), [("Content-Type", "text/html")])
