"""Kong's debug headers (``allow_debug_header``) and our four TLS decision records, for one exchange.

Kong (``kong/router/utils.lua`` ``add_debug_headers``): with ``allow_debug_header = on`` and a ``Kong-Debug``
request header (any value: Kong tests that the header is there), a request that matched a route gets
``Kong-Route-Id``, ``Kong-Route-Name`` (when the route has a name), ``Kong-Service-Id`` and ``Kong-Service-Name``
(when the route has a service, the name when it has one), on whatever response follows: the upstream's, a plugin's
exit, a 502. No route matched: none of them. The ``Kong-Debug`` header itself is forwarded upstream, as Kong does.

Ours, on the same responses: ``X-Gateway-TLS-Downstream`` (layer 1, TLS connections only), ``-Client-Auth``
(layer 2: TLS connections, and plain-HTTP requests on which mtls-auth ran), ``-Upstream-Cert`` and
``-Upstream-Trust`` (layers 3 and 4, services that speak TLS upstream). Each is built here, only for such a request,
from what the connection, the plugin cache, the upstream connection or the failed try already hold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from gateway.plugins.mtls_auth.trace import client_auth_record
from gateway.tls.served.trace import served_record
from gateway.tls.trace import TraceRecord, render
from gateway.tls.upstream.connect import HandshakeFailure
from gateway.tls.upstream.trace import UpstreamCertRecord, UpstreamTrustRecord, trust_record

if TYPE_CHECKING:
    from gateway.proxy.router import Match
    from gateway.runtime.snapshot import Snapshot
    from gateway.upstream.connection import UpstreamConnection
    from gateway.upstream.target import ServiceTarget

__all__ = ["DEBUG_REQUEST_HEADER", "debug_headers"]

#: the request header that asks for the debug headers (lowercase, as ``RequestHead.get`` takes it)
DEBUG_REQUEST_HEADER: Final = "kong-debug"


def _latin1(text: str) -> str:
    return text.encode("utf-8").decode("latin-1")


def _upstream_records(
    service: ServiceTarget, up: UpstreamConnection | None, failure: HandshakeFailure | None, host_header: str
) -> list[TraceRecord]:
    profile = service.tls_profile
    if profile is None:
        return []  # a plain-HTTP service: layers 3 and 4 do not apply
    host = host_header or service.host_header
    trust: UpstreamTrustRecord
    transport = up.transport if up is not None else None
    if failure is not None and up is None:
        trust = trust_record(profile, host, failure=failure)
    elif up is not None and transport is not None:
        trust = trust_record(profile, host, transport.get_extra_info("tls"), pooled=up.reused)
    else:  # answered before any upstream connection (a plugin's exit): the settings, and no connection
        base = trust_record(profile, host)
        trust = UpstreamTrustRecord(profile, base.sni, base.host_checked, "no-connection", None, False)
    return [UpstreamCertRecord(profile), trust]


def debug_headers(
    match: Match,
    conn: Any,
    snapshot: Snapshot | None,
    up: UpstreamConnection | None,
    failure: HandshakeFailure | None,
    host_header: str,
) -> list[tuple[str, str]]:
    """The response headers of a ``Kong-Debug`` request that matched ``match`` (see the module docstring)."""
    route, service = match.route, match.service
    headers = [("Kong-Route-Id", route.id)]
    if route.name is not None:
        headers.append(("Kong-Route-Name", _latin1(route.name)))
    if service is not None:
        headers.append(("Kong-Service-Id", service.id))
        if service.name is not None:
            headers.append(("Kong-Service-Name", _latin1(service.name)))
    records: list[TraceRecord | None] = []
    tls = conn.tls
    if tls is not None:
        records.append(served_record(tls, snapshot.certificates if snapshot is not None else None))
    records.append(client_auth_record(tls, conn.plugin_cache))
    if service is not None:
        records.extend(_upstream_records(service, up, failure, host_header))
    for record in records:
        if record is not None:
            headers.append((record.header.value, render(record.pairs())))
    return headers
