"""Kong's gRPC form of the responses the gateway generates itself (``kong/pdk/response.lua``, ``send``).

Rules, in Kong's words and order:

1. A request is gRPC when its ``Content-Type`` starts with ``application/grpc`` **and** it came over HTTP/2
   (``is_grpc_request``); a gRPC content type over HTTP/1 is not, and keeps Kong's 426 on a gRPC route.
2. ``kong.response.error`` on a gRPC request sends ``Content-Type: application/grpc``, no body
   (``Content-Length: 0``), the **HTTP status unchanged** (404, 502, ... - not 200), ``grpc-status`` from
   ``HTTP_TO_GRPC_STATUS`` and ``grpc-message`` as the gRPC code's name (``NotFound``): Kong drops the text
   message there, because the content type is already ``application/grpc`` when ``send`` runs.
3. A status missing from the table falls back by class: 5xx -> 13, 4xx -> 3, 2xx -> 0, anything else -> 2.
4. nginx ``error_page`` responses (502/503/504 from the upstream, ``kong/error_handlers.lua``) are gRPC only when
   the ``Accept`` header (else the ``Content-Type``, else ``error_default_type``) starts with ``application/grpc``;
   the handler then exits with ``{message = ...}``, which ``send`` turns into ``grpc-message: <the message>`` on a
   gRPC request, and into the JSON ``{"message":"..."}`` on any other.

All data: the tables below are Kong's, and the functions only pick from them.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.downstream.request import RequestHead

__all__ = [
    "GRPC_MESSAGES",
    "HTTP_TO_GRPC_STATUS",
    "MIME_GRPC",
    "error_page_grpc",
    "grpc_headers",
    "grpc_status",
    "is_grpc_request",
    "message_json",
]

MIME_GRPC = "application/grpc"

#: kong/pdk/response.lua HTTP_TO_GRPC_STATUS
HTTP_TO_GRPC_STATUS: dict[int, int] = {
    200: 0,
    400: 3,
    401: 16,
    403: 7,
    404: 5,
    409: 6,
    429: 8,
    499: 1,
    500: 13,
    501: 12,
    503: 14,
    504: 4,
}

#: kong/pdk/response.lua GRPC_MESSAGES (the code names Kong sends as ``grpc-message`` when it has no text)
GRPC_MESSAGES: dict[int, str] = {
    0: "OK",
    1: "Canceled",
    2: "Unknown",
    3: "InvalidArgument",
    4: "DeadlineExceeded",
    5: "NotFound",
    6: "AlreadyExists",
    7: "PermissionDenied",
    8: "ResourceExhausted",
    9: "FailedPrecondition",
    10: "Aborted",
    11: "OutOfRange",
    12: "Unimplemented",
    13: "Internal",
    14: "Unavailable",
    15: "DataLoss",
    16: "Unauthenticated",
}

_GRPC_STATUS_UNKNOWN = 2


def is_grpc_request(head: RequestHead) -> bool:
    """Rule 1: a gRPC content type on an HTTP/2 stream."""
    content_type = head.content_type
    return head.version == "2.0" and content_type is not None and content_type.startswith(MIME_GRPC)


def grpc_status(status: int) -> int:
    """Rules 2 and 3: the ``grpc-status`` Kong sends for an HTTP status."""
    code = HTTP_TO_GRPC_STATUS.get(status)
    if code is not None:
        return code
    if 500 <= status <= 599:
        return HTTP_TO_GRPC_STATUS[500]
    if 400 <= status <= 499:
        return HTTP_TO_GRPC_STATUS[400]
    if 200 <= status <= 299:
        return HTTP_TO_GRPC_STATUS[200]
    return _GRPC_STATUS_UNKNOWN


def grpc_headers(status: int, message: str | None = None) -> tuple[tuple[str, str], ...]:
    """``grpc-status`` and ``grpc-message`` of a generated gRPC response (the code's name without a message)."""
    code = grpc_status(status)
    return (("grpc-status", str(code)), ("grpc-message", message if message is not None else GRPC_MESSAGES[code]))


def error_page_grpc(accept: str | None, content_type: str | None, default_type: str) -> bool:
    """Rule 4: whether Kong's error handler takes its gRPC branch (a table message) for this request."""
    chosen = accept if accept is not None else content_type if content_type is not None else default_type
    return chosen.startswith(MIME_GRPC)


def message_json(message: str) -> bytes:
    """Rule 4 on a request that is not gRPC: cjson's encoding of ``{message = ...}``."""
    return json.dumps({"message": message}, ensure_ascii=False, separators=(",", ":")).encode()
