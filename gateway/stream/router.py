"""Stream route matching as Kong's ``traditional_compatible`` router does it for its stream subsystem.

Theory of operation (``kong/router/transform.lua`` ``get_expression`` and ``stream_get_priority``, ``atc.lua``,
``fields.lua``; ``kong/runloop/handler.lua`` ``new_router``):

1. What goes in: every route with a stream protocol (``tcp``, ``tls``, ``tls_passthrough``), as Kong's stream
   subsystem builds its router from the routes ``should_process_route`` accepts. A route whose service speaks an
   HTTP protocol is kept *without* a service (Kong logs ``service with protocol 'http' cannot be used with 'stream'
   subsystem`` and adds it anyway); a stored ``udp`` route is left out with Kong's ``could not add route`` line
   (``udp`` is refused at write time, ``gateway.entities.routes``).
2. Conditions, all of which must hold (route ``protocols`` are not one of them: Kong's stream expression has none):
   - ``snis``: ``(net.protocol != "tls" || tls.sni == ...)``: only a connection routed as ``tls`` checks them, so a
     plain ``tcp`` connection matches a route whatever its ``snis``. Patterns as for HTTP routes: ``*.x`` is a suffix
     match on ``.x`` (spanning labels), ``x.*`` a prefix match on ``x.``, a trailing dot is dropped.
   - ``sources`` / ``destinations``: any entry matches; an entry's ``ip`` is an address (equality) or a CIDR range,
     its ``port`` an equality, both when both are given.
3. The scheme a connection is routed with (``atc.lua`` ``exec``): ``tls`` when the ClientHello was read (an ``ssl``
   listener), even with no server name (the SNI is then ``""``, which no ``snis`` entry matches); ``tcp`` otherwise.
4. Priority (``stream_get_priority``), tried highest first, ties to the greater route id (the ATC router's
   ``BTreeMap`` of ``(priority, uuid)`` walked in reverse):
   bit 61 for a route with ``snis``, or with both ``sources`` and ``destinations``; then the ``sources`` weight
   shifted by 4 and the ``destinations`` weight, each the OR of ``IP`` (8), ``PORT`` (4) and ``CIDR`` (1) over the
   entries.

A router is built once per snapshot; ``match`` is a scan of precompiled matchers (stream connections are far
fewer than HTTP requests, and a source port in the key would defeat a cache).
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Final

from gateway.proxy.matchers import name_matches, sni_pattern

__all__ = ["STREAM_PROTOCOLS", "StreamRoute", "StreamRouter", "stream_priority"]

#: Kong's ``protocols_with_subsystem`` entries that belong to the stream subsystem
STREAM_PROTOCOLS: Final = frozenset(("tcp", "tls", "tls_passthrough", "udp"))
#: the service protocols a stream route can proxy to (others are HTTP's; see rule 1)
STREAM_SERVICE_PROTOCOLS: Final = STREAM_PROTOCOLS

_SNI_BIT: Final = 1 << 61
_IP_BIT: Final = 1 << 3
_PORT_BIT: Final = 1 << 2
_CIDR_BIT: Final = 1 << 0


_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class StreamRoute:
    """A stream route as the connection needs it: its service, and what an ``ssl`` listener does with it."""

    __slots__ = ("id", "name", "passthrough", "preserve_host", "protocols", "row", "service", "terminate")

    def __init__(self, row: Mapping[str, Any], service: Any) -> None:
        self.row = row
        self.id: str = row["id"]
        self.name: str | None = row.get("name")
        self.protocols = frozenset(row.get("protocols") or ())
        self.preserve_host = bool(row.get("preserve_host", False))
        #: on an ``ssl`` listener (Kong's preread block): a ``tls`` route terminates, else ``tls_passthrough``
        #: forwards the ciphertext, else the route cannot be served there ("unexpected protocols")
        self.terminate = "tls" in self.protocols
        self.passthrough = not self.terminate and "tls_passthrough" in self.protocols
        self.service = service  # the snapshot's compiled ServiceTarget, or None


class _Net:
    """One ``sources``/``destinations`` entry."""

    __slots__ = ("address", "network", "port")

    def __init__(self, entry: Mapping[str, Any]) -> None:
        ip = entry.get("ip")
        port = entry.get("port")
        self.port: int | None = int(port) if port is not None else None
        self.address: _Address | None = None
        self.network: _Network | None = None
        if ip is not None:
            if "/" in str(ip):
                self.network = ipaddress.ip_network(str(ip), strict=False)
            else:
                self.address = ipaddress.ip_address(str(ip))

    def matches(self, ip: _Address | None, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.address is not None:
            return ip is not None and ip == self.address
        if self.network is not None:
            return ip is not None and ip.version == self.network.version and ip in self.network
        return True


def _weight(entries: Iterable[Mapping[str, Any]] | None) -> int:
    weight = 0
    for entry in entries or ():
        ip = entry.get("ip")
        if ip is not None:
            weight |= _CIDR_BIT if "/" in str(ip) else _IP_BIT
        if entry.get("port") is not None:
            weight |= _PORT_BIT
    return weight


def stream_priority(row: Mapping[str, Any]) -> int:
    """Kong's ``stream_get_priority`` for a route row (rule 4)."""
    snis, sources, destinations = row.get("snis"), row.get("sources"), row.get("destinations")
    weight = _SNI_BIT if snis or (sources and destinations) else 0
    return weight | (_weight(sources) << 4) | _weight(destinations)


class _Matcher:
    __slots__ = ("destinations", "route", "snis", "sort_key", "sources")

    def __init__(self, route: StreamRoute) -> None:
        row = route.row
        self.route = route
        snis = row.get("snis")
        self.snis: tuple[tuple[int, str], ...] | None = tuple(sni_pattern(s) for s in snis) if snis else None
        sources, destinations = row.get("sources"), row.get("destinations")
        self.sources: tuple[_Net, ...] | None = tuple(_Net(e) for e in sources) if sources else None
        self.destinations: tuple[_Net, ...] | None = tuple(_Net(e) for e in destinations) if destinations else None
        try:
            tiebreak = uuid.UUID(route.id).bytes
        except ValueError:
            tiebreak = route.id.encode()
        self.sort_key = (stream_priority(row), tiebreak)

    def matches(
        self, tls: bool, sni: str | None, src: tuple[_Address | None, int], dst: tuple[_Address | None, int]
    ) -> bool:
        if (
            self.snis is not None
            and tls
            and (not sni or not any(name_matches(kind, pattern, sni) for kind, pattern in self.snis))
        ):
            return False
        if self.sources is not None and not any(n.matches(*src) for n in self.sources):
            return False
        return self.destinations is None or any(n.matches(*dst) for n in self.destinations)


def _address(ip: str) -> _Address | None:
    try:
        return ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return None


class StreamRouter:
    """The stream routes of one snapshot, compiled (see the module docstring)."""

    __slots__ = ("_matchers", "routes")

    def __init__(self, pairs: Iterable[tuple[Mapping[str, Any], Any]], log: Any = None) -> None:
        """``pairs``: (route row, compiled service or None), as the snapshot builds them for every router."""
        self.routes: list[StreamRoute] = []
        matchers: list[_Matcher] = []
        for row, service in pairs:
            protocols = row.get("protocols") or ()
            if not any(p in STREAM_PROTOCOLS for p in protocols):
                continue
            if "udp" in protocols:
                if log is not None:
                    log.error(f"could not add route: {row['id']}, err: udp routes are not supported")
                continue
            if service is not None and service.protocol not in STREAM_SERVICE_PROTOCOLS:
                if log is not None:
                    log.warn(f"service with protocol '{service.protocol}' cannot be used with 'stream' subsystem")
                service = None
            route = StreamRoute(row, service)
            self.routes.append(route)
            matchers.append(_Matcher(route))
        matchers.sort(key=lambda m: m.sort_key, reverse=True)
        self._matchers: tuple[_Matcher, ...] = tuple(matchers)

    def __len__(self) -> int:
        return len(self.routes)

    def match(
        self, tls: bool, sni: str | None, src_ip: str, src_port: int, dst_ip: str, dst_port: int
    ) -> StreamRoute | None:
        """The route for a connection: ``tls`` is the scheme (rule 3), ``sni`` the preread server name."""
        src = (_address(src_ip), src_port)
        dst = (_address(dst_ip), dst_port)
        for matcher in self._matchers:
            if matcher.matches(tls, sni, src, dst):
                return matcher.route
        return None
