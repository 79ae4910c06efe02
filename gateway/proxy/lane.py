"""The common case of a proxied request, compiled once per route match: what ``Exchange.begin`` would compute again
for every request that matches the same way.

Theory of operation. The router caches its answers (``router`` rule 5): the same method, normalized path, Host,
port, scheme and SNI give the same ``Match`` object, for the life of the snapshot. Most of what the access phase
derives from a request depends on nothing else: the runloop's refusals (https-only, gRPC), the plugin chain, the
service and whether it can be reached without a balancer, the ``Host`` sent upstream, and - unless a trusted peer
sent its own - the ``X-Forwarded-*`` values. A ``Lane`` holds those for one ``Match``, built by the first request
that took the full path through ``begin`` (so every check ran once, with its log lines), and used by the next ones
when:

1. the match comes from a caching router (a router with ``headers`` conditions answers with a new ``Match`` each
   time, which never gets a lane);
2. the route has no plugins (no access phase to run), no https-only or gRPC refusal, a service with a connector and
   no Upstream entity (no balancer state per request), and a TLS profile without notices (they are logged per
   request, as Kong's access phase does);
3. the request's raw path is the one the lane was built for (``X-Forwarded-Path`` is the raw path, and two raw
   paths can normalize to one), the peer is not in ``trusted_ips`` (its ``X-Forwarded-*`` would replace ours) and
   ``allow_debug_header`` is off.

The upstream request line, ``Via`` and ``Host`` are the same bytes for every request on the lane that has no query
string, no ``TE``, no ``Via`` and HTTP/1.1 (``Lane.lead``, made by the first such request with the full path's
function). Everything else (the request id, ``X-Forwarded-For``/``X-Real-IP``, the client's headers, the query
string, the DNS answer for a service named by host) is still read per request, through the same functions as the
full path, so both produce the same bytes (``tests/unit/proxy/test_proxy_heads.py`` runs every head through both).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.upstream.target import pool_key

if TYPE_CHECKING:
    from gateway.upstream.target import ServiceTarget

__all__ = ["Lane", "lane_for"]


class Lane:
    """What ``Exchange.begin`` derived for one ``Match`` that does not change from one request to the next."""

    __slots__ = ("forwarded", "host_header", "ip", "key", "lead", "raw_path", "service", "uri")

    def __init__(self, service: ServiceTarget, raw_path: str, uri: str, forwarded: str, host_header: str) -> None:
        self.service = service
        self.raw_path = raw_path
        #: the escaped upstream path (``Match.upstream_uri``), without the query string
        self.uri = uri
        #: the ``X-Forwarded-Proto``..``-Prefix`` lines (``request_head.forwarded_lines``)
        self.forwarded = forwarded
        self.host_header = host_header
        #: the upstream request line, ``Via`` and ``Host`` (``request_head.lead_headers``) of a request without query
        #: string, ``TE`` or ``Via`` from an HTTP/1.1 client: the same bytes for every such request on the lane, made
        #: by the first one (b"" until then)
        self.lead = b""
        #: the last peer address and its pool key (a service named by host may resolve elsewhere later)
        self.ip = ""
        self.key: tuple[Any, ...] = ()

    def key_for(self, ip: str, port: int) -> tuple[Any, ...]:
        """The pool key of a try to ``ip``: computed again only when the address changed."""
        if ip != self.ip:
            self.key = pool_key(ip, port, self.host_header, self.service)
            self.ip = ip
        return self.key


def lane_for(
    service: ServiceTarget, refuses: bool, uri: str | None, raw_path: str, forwarded: str, host_header: str
) -> Lane | None:
    """The lane of a request that went through the full path to a service (None if it cannot have one: rule 2).

    ``refuses``: the route is https-only or gRPC (the runloop may answer instead of proxying); ``uri``: the match's
    escaped upstream path.
    """
    if refuses or uri is None or service.connect is None or service.balancer is not None:
        return None
    profile = service.tls_profile
    if profile is not None and profile.notices:
        return None
    return Lane(service, raw_path, uri, forwarded, host_header)
