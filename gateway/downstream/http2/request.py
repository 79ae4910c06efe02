"""What an HTTP/2 client sent, in the shapes the rest of the gateway reads: the request head, the GOAWAY code."""

from __future__ import annotations

from h2.errors import ErrorCodes
from h2.exceptions import ProtocolError
from hpack.exceptions import HPACKError, OversizedHeaderListError

from gateway.downstream.request import RequestHead

__all__ = ["error_code", "request_head"]


def error_code(exc: ProtocolError) -> int:
    """The GOAWAY code for ``exc``: h2 reports an undecodable header block as PROTOCOL_ERROR, RFC 9113 4.3 says
    COMPRESSION_ERROR (and nginx sends it)."""
    if isinstance(exc.__cause__, HPACKError) and not isinstance(exc.__cause__, OversizedHeaderListError):
        return ErrorCodes.COMPRESSION_ERROR
    return int(exc.error_code)


def request_head(headers: list[tuple[bytes, bytes]]) -> RequestHead:
    """``H2Connection`` rule 1: an HTTP/1-shaped ``RequestHead`` (version ``2.0``) from a stream's header list."""
    method = path = authority = ""
    fields: list[tuple[str, str]] = []
    cookies: list[str] = []
    has_host = False
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1")
        value = raw_value.decode("latin-1")
        if name[:1] == ":":
            if name == ":method":
                method = value
            elif name == ":path":
                path = value
            elif name == ":authority":
                authority = value
            continue
        if name == "cookie":
            cookies.append(value)
            continue
        if name == "host":
            has_host = True
        fields.append((name, value))
    if authority and not has_host:
        fields.insert(0, ("host", authority))
    if cookies:
        fields.append(("cookie", "; ".join(cookies)))
    return RequestHead(method, path, "2.0", fields, True)
