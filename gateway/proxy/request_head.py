"""The upstream request head, as pure functions: nginx's header order with the values Kong sets.

Order (``kong/templates/nginx_kong.lua`` + nginx's proxy module): the request line, ``TE`` (only ``trailers``, when
the client listed it), ``Via``, ``Host``, ``Connection: keep-alive``, ``X-Forwarded-*``, ``X-Real-IP``,
``X-Kong-Request-Id`` (``headers_upstream``), the framing, then the client's headers minus the hop-by-hop ones and
those named in its ``Connection`` header; headers a plugin set or cleared replace the client's.

``fixed_headers`` is everything after the ``Host`` line, built once per request; ``lead_headers`` is built per try,
because ``Host`` depends on the peer the balancer picked. The ``X-Forwarded-Proto``..``-Prefix`` lines
(``forwarded_lines``) depend on the route, the listener and the path only, unless a trusted peer sent its own: a
``proxy.lane.Lane`` keeps them per route match, so most requests do not format them again. Each is one f-string: the
fixed text is compiled once and only the values are filled in (the hot path;
``tests/unit/proxy/test_proxy_heads.py`` checks the bytes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from gateway.downstream.headers import VIA_VALUE, HeaderPolicy, connection_tokens

if TYPE_CHECKING:
    from gateway.downstream.request import RequestHead
    from gateway.proxy.access import Forwarded

__all__ = ["fixed_headers", "forwarded_lines", "lead_headers", "lists_trailers"]

_VIA_10: Final = "1 " + VIA_VALUE[4:]  # the Via entry of an HTTP/1.0 client's request
_CRLF: Final = "\r\n"


def lists_trailers(te: str) -> bool:
    """Whether a ``TE`` header value lists ``trailers``."""
    return "trailers" in [t.strip().lower() for t in te.split(",")]


def fixed_headers(
    head: RequestHead,
    policy: HeaderPolicy,
    remote: str,
    peer_ip: str,
    request_id: str,
    forwarded: str,
    changed: Mapping[str, tuple[str, str | None]] | None,
) -> bytes:
    """Everything of the upstream request head after the ``Host`` line.

    Args:
        remote: the client address Kong reports (``X-Real-IP``; ``X-Forwarded-For`` when the client sent none).
        peer_ip: the connection's peer, appended to a client's ``X-Forwarded-For``.
        forwarded: the ``X-Forwarded-Proto``..``-Prefix`` lines (``forwarded_lines``).
        changed: the upstream headers plugins set (value) or cleared (None), by lowercase name.
    """
    xff = head.x_forwarded_for
    if head.chunked:
        framing = "Transfer-Encoding: chunked\r\n"
    elif head.content_length is not None:
        framing = f"Content-Length: {head.content_length}\r\n"
    else:
        framing = ""
    drop = policy.request_drop
    if head.connection is not None:
        listed = connection_tokens(head.connection)
        if listed:
            drop = drop.union(listed)
    if changed:
        drop = drop.union(changed)  # plugins' set/clear replace whatever the client sent
    client = "".join([f"{name}: {value}\r\n" for name, value in head.headers if name.lower() not in drop])
    if changed:
        client += "".join(
            [f"{set_name}: {set_value}\r\n" for set_name, set_value in changed.values() if set_value is not None]
        )
    forwarded_for = remote if xff is None else f"{xff}, {peer_ip}"
    if policy.request_id_upstream:  # two whole f-strings: a nested one for the id line built two more objects
        text = (
            f"Connection: keep-alive\r\nX-Forwarded-For: {forwarded_for}\r\n{forwarded}X-Real-IP: {remote}\r\n"
            f"X-Kong-Request-Id: {request_id}\r\n{framing}{client}\r\n"
        )
    else:
        text = (
            f"Connection: keep-alive\r\nX-Forwarded-For: {forwarded_for}\r\n{forwarded}X-Real-IP: {remote}\r\n"
            f"{framing}{client}\r\n"
        )
    return text.encode("latin-1")


def forwarded_lines(values: Forwarded) -> str:
    """The ``X-Forwarded-Proto/Host/Port/Path`` lines and ``X-Forwarded-Prefix`` when there is one."""
    proto, host, port, path, prefix = values
    return (
        f"X-Forwarded-Proto: {proto}\r\nX-Forwarded-Host: {host}\r\nX-Forwarded-Port: {port}\r\n"
        f"X-Forwarded-Path: {path}\r\n{f'X-Forwarded-Prefix: {prefix}' + _CRLF if prefix else ''}"
    )


def lead_headers(head: RequestHead, uri: str, host_header: str) -> bytes:
    """The request line, ``TE``, ``Via`` and ``Host``: what comes before ``fixed_headers``."""
    te = head.te
    via = head.via
    inbound = _VIA_10 if head.version == "1.0" else VIA_VALUE
    return (
        f"{head.method} {uri} HTTP/1.1\r\n"
        f"{'TE: trailers' + _CRLF if te is not None and lists_trailers(te) else ''}"
        f"Via: {inbound if via is None else f'{via}, {inbound}'}\r\nHost: {host_header}\r\n"
    ).encode("latin-1")
