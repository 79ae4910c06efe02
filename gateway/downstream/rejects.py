"""What a client that sent something wrong gets: nginx's answer, and the log lines of dropped headers.

Malformed or over-limit input is answered with nginx's status (400/414/494 -> 400/501, 413, and 497 for plain HTTP
on an ``ssl`` port, sent as 400) and Kong's body for it (``responses``), or nginx's own HTML page where Kong has no
handler for the status (501, 497). The connection writes the answer and closes.
"""

from __future__ import annotations

from gateway.downstream.generated import render_generated
from gateway.downstream.request import RequestHead
from gateway.downstream.responses import (
    ERROR_MESSAGES,
    NGINX_501_BODY,
    NGINX_PLAIN_HTTP_ON_TLS_BODY,
    error_body,
    error_page_mime,
)
from gateway.downstream.shared import SharedState
from gateway.observability.errorlog import ErrorLog, request_context

__all__ = ["PLAIN_HTTP_ON_TLS", "log_dropped_headers", "reject_response"]

PLAIN_HTTP_ON_TLS = 497
"""nginx's internal ``NGX_HTTP_TO_HTTPS``, sent as 400."""


def reject_response(
    status: int, head: RequestHead | None, request_id: str, state: SharedState
) -> tuple[bytes, int, int]:
    """The bytes answering a rejected request, the status sent (494 and 497 are sent as 400), the body's length."""
    sent = 400 if status in (494, PLAIN_HTTP_ON_TLS) else status
    if status == 501:
        body, mime = NGINX_501_BODY, "text/html"
    elif status == PLAIN_HTTP_ON_TLS:
        body, mime = NGINX_PLAIN_HTTP_ON_TLS_BODY, "text/html"
    else:
        accept = head.accept if head is not None else None
        ctype = head.content_type if head is not None else None
        mime = error_page_mime(accept, ctype, state.settings.error_default_type)
        body = error_body(mime, ERROR_MESSAGES.get(status, ERROR_MESSAGES[400]), request_id)
    data = render_generated(
        sent,
        body,
        mime,
        keep_alive=False,
        policy=state.header_policy,
        date=state.date,
        request_id=request_id,
        latency_ms=0,
    )
    return data, sent, len(body)


def log_dropped_headers(log: ErrorLog, peer_ip: str, conn_id: int, head: RequestHead) -> None:
    """nginx's ``info`` line for each invalid header ``check_head`` dropped (``ignore_invalid_headers``)."""
    if not log.info_enabled or head.dropped is None:
        return
    request_line = head.request_line
    for name, value, host, referer in head.dropped:
        context = request_context(peer_ip, request_line, host=host)
        if referer is not None:
            context += f', referrer: "{referer}"'
        log.info(
            f'client sent invalid header line: "{name}: {value}" while reading client request headers',
            conn_id,
            context,
        )
