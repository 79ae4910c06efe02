"""Kong's generated responses: status lines, error templates, and the Accept-driven choice between them.

Rules (``kong/tools/http.lua``, ``kong/error_handlers.lua``, ``kong/pdk/response.lua``):

1. ``kong.response.error`` responses (404 no route, 426, 503 no service ...) pick the template from the
   request ``Accept`` header only; no Accept means JSON (``error_for_accept``).
2. nginx ``error_page`` responses (400, 404, 405, 408, 411-414, 417, 494, 500, 502-504: parse errors and
   upstream failures) pick it from ``Accept``, then the request ``Content-Type``, then ``error_default_type``
   (``error_page_body``).
3. ``Accept`` is parsed as Kong does: comma-separated media ranges, the highest ``q`` wins (first on ties),
   ``*/*`` means JSON, ``text/*`` plain, ``application/*`` JSON; anything unknown keeps the previous choice.
4. 494 (nginx's internal "request header too large") is sent as **400** with the body
   ``Request header or cookie too large``, exactly as Kong's error handler converts it.

Everything that can be is pre-built bytes: status lines for 100-599 and the Content-Type header lines.
Bodies embed the per-request id, so they are formatted per response (one ``%`` on a small template).
"""

from __future__ import annotations

import re
from http import HTTPStatus

__all__ = [
    "ERROR_MESSAGES",
    "MIME_HTML",
    "MIME_JSON",
    "MIME_PLAIN",
    "MIME_XML",
    "NGINX_501_BODY",
    "NGINX_PLAIN_HTTP_ON_TLS_BODY",
    "STATUS_LINES",
    "error_body",
    "error_page_mime",
    "reason_phrase",
    "response_mime",
]

MIME_JSON = "application/json; charset=utf-8"
MIME_HTML = "text/html; charset=utf-8"
MIME_PLAIN = "text/plain; charset=utf-8"
MIME_XML = "application/xml; charset=utf-8"
MIME_GRPC = "application/grpc"

# kong/tools/http.lua MIME_TYPES: keys are the media type as written in Accept, lowercased.
_MIME_TYPES: dict[str, str] = {
    "text/html": MIME_HTML,
    "application/json": MIME_JSON,
    "text/plain": MIME_PLAIN,
    "application/xml": MIME_XML,
    "application": MIME_JSON,
    "text": MIME_PLAIN,
}

_TEMPLATES: dict[str, str] = {
    MIME_HTML: (
        "<!doctype html>\n"
        "<html>\n"
        "  <head>\n"
        '    <meta charset="utf-8">\n'
        "    <title>Error</title>\n"
        "  </head>\n"
        "  <body>\n"
        "    <h1>Error</h1>\n"
        "    <p>%s.</p>\n"
        "    <p>request_id: %s</p>\n"
        "  </body>\n"
        "</html>\n"
    ),
    MIME_JSON: '{\n  "message":"%s",\n  "request_id":"%s"\n}',
    MIME_PLAIN: "%s\nrequest_id: %s\n",
    MIME_XML: (
        '<?xml version="1.0" encoding="UTF-8"?>\n<error>\n  <message>%s</message>\n'
        "  <requestid>%s</requestid>\n</error>\n"
    ),
}

# kong/error_handlers.lua BODIES (nginx error_page statuses).
ERROR_MESSAGES: dict[int, str] = {
    400: "Bad request",
    404: "Not found",
    405: "Method not allowed",
    408: "Request timeout",
    411: "Length required",
    412: "Precondition failed",
    413: "Payload too large",
    414: "URI too long",
    417: "Expectation failed",
    494: "Request header or cookie too large",
    500: "An unexpected error occurred",
    502: "An invalid response was received from the upstream server",
    503: "The upstream server is currently unavailable",
    504: "The upstream server is timing out",
}

# nginx's built-in page for statuses outside Kong's error_page list (Kong's patch drops the footer).
NGINX_501_BODY = (
    b"<html>\r\n<head><title>501 Not Implemented</title></head>\r\n<body>\r\n"
    b"<center><h1>501 Not Implemented</h1></center>\r\n</body>\r\n</html>\r\n"
)

# nginx's page for its internal 497 (plain HTTP on an ssl listener), sent as 400: 497 is not in Kong's error_page
# list, so Kong's error handler never sees it (reference section 5).
NGINX_PLAIN_HTTP_ON_TLS_BODY = (
    b"<html>\r\n<head><title>400 The plain HTTP request was sent to HTTPS port</title></head>\r\n<body>\r\n"
    b"<center><h1>400 Bad Request</h1></center>\r\n"
    b"<center>The plain HTTP request was sent to HTTPS port</center>\r\n</body>\r\n</html>\r\n"
)

_NGINX_REASONS = {
    # nginx's own spellings where they differ from the RFC names Python knows.
    413: "Request Entity Too Large",
    414: "Request-URI Too Large",
    416: "Requested Range Not Satisfiable",
    302: "Moved Temporarily",
}


def reason_phrase(status: int) -> str:
    """The reason phrase nginx writes for a status it generates."""
    if status in _NGINX_REASONS:
        return _NGINX_REASONS[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _status_line(status: int) -> bytes:
    phrase = reason_phrase(status)
    return f"HTTP/1.1 {status} {phrase}\r\n".encode() if phrase else f"HTTP/1.1 {status} \r\n".encode()


STATUS_LINES: dict[int, bytes] = {status: _status_line(status) for status in range(100, 600)}

_ACCEPT_RE = re.compile(
    r"((?:[a-z0-9][a-z0-9\-!#$&^_+.]+|\*)\s*/\s*(?:[a-z0-9][a-z0-9\-!#$&^_+.]+|\*))"
    r"(?:\s*;\s*q\s*=\s*(1(?:\.0{0,3}|)|0(?:\.\d{0,3}|))|\s*;\s*[a-z0-9][a-z0-9\-!#$&^_+.]+(?:=[^;]*|))*",
    re.IGNORECASE,
)


def _mime_of(media_type: str) -> str | None:
    """``get_mime_type``: ``*/*`` -> JSON, ``type/*`` -> that family, exact match otherwise."""
    media_type = media_type.split(";", 1)[0].strip().lower().replace(" ", "")
    major, sep, minor = media_type.partition("/")
    if not sep:
        return None
    if minor == "*":
        return MIME_JSON if major == "*" else _MIME_TYPES.get(major)
    return _MIME_TYPES.get(media_type)


def response_mime(accept: str | None) -> str:
    """``get_response_type``: the template for an Accept value (JSON when absent or unknown)."""
    content_type = MIME_JSON
    if accept is None:
        return content_type
    max_quality = 0.0
    for raw in accept.split(","):
        match = _ACCEPT_RE.match(raw.strip())
        if match is None:
            continue
        quality = float(match.group(2)) if match.group(2) else 1.0
        if quality > max_quality:
            max_quality = quality
            content_type = _mime_of(match.group(1)) or content_type
    return content_type


def error_page_mime(accept: str | None, content_type: str | None, default_type: str) -> str:
    """Template for nginx error_page statuses: Accept, then request Content-Type, then error_default_type."""
    value = accept if accept is not None else content_type if content_type is not None else default_type
    return response_mime(value)


def error_body(mime: str, message: str, request_id: str) -> bytes:
    """Format Kong's error template for ``mime`` (one of the ``MIME_*`` constants)."""
    template = _TEMPLATES.get(mime, _TEMPLATES[MIME_JSON])
    return (template % (message, request_id)).encode()
