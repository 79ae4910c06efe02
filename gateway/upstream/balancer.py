"""Where a request goes: service host -> (ip, port, hostname), through Upstream entities, DNS and health.

Rules (``kong/runloop/balancer/init.lua`` ``execute``, ``balancers.lua``, ``targets.lua``):

1. A service host that is an IP literal is used as is; any other name that is not an upstream entity is resolved
   through the ``DnsCache`` (``gateway.upstream.dns``); no address -> ``503 name resolution failed``.
2. A service host that names an ``upstreams`` entity is balanced over that upstream's targets by the upstream's
   ``algorithm`` (``gateway.upstream.algorithms``). A target is ``host:port`` (Kong's targets always carry a port);
   a target host that is a name expands into one *address* per DNS record, each with the target's weight, and is
   re-resolved when its TTL runs out (in the background: the stale addresses serve meanwhile). Weight 0 disables
   a target. No eligible address, or a balancer below its ``healthchecks.threshold`` (percentage of weight
   available) -> ``503 failure to get a peer from the ring-balancer``.
3. The hostname of an address (the Host header and SNI basis when ``preserve_host`` is off) is
   ``upstream.host_header`` when set, else the target's name (an IP target's name is the IP).
4. A ``Balancer`` is rebuilt with every snapshot; the health of its addresses is not: each address points to a
   ``TargetHealth`` owned by the upstream's long-lived ``HealthChecker`` (``gateway.upstream.checker``), which
   the health registry attaches when the snapshot is installed. Until then (and for upstreams without health
   checks) every address is healthy.
5. One ``Handle`` per request: the hash value (computed once), the current address, the addresses that failed
   in this request (a retry moves to another one while there is one), and the least-connections count.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from gateway.upstream.algorithms import ALGORITHMS, Algorithm
from gateway.upstream.checker import HealthChecker
from gateway.upstream.dns import DNS_ERROR_TTL, DNS_TTL, DnsAnswer, DnsCache, NoPeerError
from gateway.upstream.targets import ALWAYS_HEALTHY, Address, Handle, Target

if TYPE_CHECKING:
    from gateway.tls.upstream.probes import ProbeTls

__all__ = ["DNS_ERROR_TTL", "DNS_TTL", "Balancer", "DnsCache", "Handle", "NoPeerError"]

NO_PEER = "failure to get a peer from the ring-balancer"


def _sort_key(row: Mapping[str, Any]) -> tuple[Any, str]:
    return (row.get("created_at") or 0, str(row.get("id") or ""))


class Balancer:
    """One ``upstreams`` entity compiled for a snapshot: targets, addresses and the algorithm over them."""

    __slots__ = (
        "_algorithm",
        "_cookie_path",
        "_hash_steps",
        "_refreshing",
        "addresses",
        "algorithm",
        "checker",
        "dns_expiry",
        "hashing",
        "host_header",
        "id",
        "name",
        "probe_tls",
        "row",
        "targets",
        "threshold",
        "uses_connections",
    )

    def __init__(self, upstream: Mapping[str, Any], targets: Sequence[Mapping[str, Any]]) -> None:
        self.row = upstream
        self.id = str(upstream.get("id") or "")
        self.name: str = upstream["name"]
        self.host_header: str | None = upstream.get("host_header")
        self.algorithm: str = upstream.get("algorithm") or "round-robin"
        healthchecks = upstream.get("healthchecks") or {}
        self.threshold = float(healthchecks.get("threshold") or 0)
        cls = ALGORITHMS.get(self.algorithm, ALGORITHMS["round-robin"])
        self._algorithm: Algorithm = cls(int(upstream.get("slots") or 10000))
        self.uses_connections = self.algorithm == "least-connections"
        #: whether requests compute a hash value (``hash_on`` is not ``none``)
        self.hashing = (upstream.get("hash_on") or "none") != "none"
        self._hash_steps = _hash_steps(upstream) if self.hashing else ()
        self._cookie_path = str(upstream.get("hash_on_cookie_path") or "/")
        self.targets = [Target(row) for row in sorted(targets, key=_sort_key)]
        self.addresses: list[Address] = []
        self.checker: HealthChecker | None = None
        #: the TLS of ``https`` health probes (``gateway.tls.upstream.probes``), set by the snapshot build
        self.probe_tls: ProbeTls | None = None
        self.dns_expiry = min((t.expires for t in self.targets), default=float("inf"))
        self._refreshing: asyncio.Future[None] | None = None
        self._rebuild()

    # ------------------------------------------------------------------ structure
    def _rebuild(self) -> None:
        self.addresses = [a for t in self.targets for a in t.addresses]
        self._algorithm.rebuild(self.addresses, len(self.targets))

    def attach(self, checker: HealthChecker | None) -> None:
        """Point every address at its health in ``checker`` (None: health checks off, always healthy)."""
        self.checker = checker
        for address in self.addresses:
            address.health = checker.track(address, self.host_header) if checker is not None else ALWAYS_HEALTHY

    # ------------------------------------------------------------------ DNS
    def needs_dns(self, now: float) -> bool:
        """Some name target's answer expired (one float comparison on the hot path)."""
        return self.dns_expiry <= now

    def unresolved(self) -> bool:
        """A name target was never resolved: the first request must wait for it."""
        return any(t.is_name and t.dns_source == "unknown" for t in self.targets)

    def seed(self, dns: DnsCache) -> None:
        """Give never-resolved name targets whatever answer the cache already has, even an expired one (a
        snapshot rebuild must not make requests wait for names the previous snapshot knew); an expired answer
        is then refreshed in the background by the first request, as usual."""
        changed = False
        for target in self.targets:
            if target.is_name and target.dns_source == "unknown":
                answer = dns.peek(target.name)
                if answer is not None:
                    changed = self._apply(target, answer) or changed
        self.dns_expiry = min((t.expires for t in self.targets), default=float("inf"))
        if changed:
            self._rebuild()

    def refresh_dns(self, dns: DnsCache) -> asyncio.Future[None]:
        """Re-resolve the expired name targets (one refresh at a time); the future completes when done."""
        running = self._refreshing
        if running is not None and not running.done():
            return running
        task = asyncio.ensure_future(self._refresh(dns))
        self._refreshing = task
        return task

    async def _refresh(self, dns: DnsCache) -> None:
        now = time.monotonic()
        stale = [t for t in self.targets if t.is_name and t.expires <= now]
        answers = await asyncio.gather(*(dns.lookup(t.name) for t in stale))
        changed = False
        for target, answer in zip(stale, answers, strict=True):
            changed = self._apply(target, answer) or changed
        self.dns_expiry = min((t.expires for t in self.targets), default=float("inf"))
        if changed:
            self._rebuild()

    def _apply(self, target: Target, answer: DnsAnswer) -> bool:
        """A DNS answer for a name target: keep addresses that stay, add new ones, drop those gone."""
        target.expires = answer.expires
        target.dns_source = answer.source
        old = {(a.ip, a.port): a for a in target.addresses}
        new: list[Address] = []
        for ip in answer.addresses:
            address = old.pop((ip, target.port), None)
            if address is None:
                address = Address(target, ip, target.port, target.weight)
                if self.checker is not None:
                    address.health = self.checker.track(address, self.host_header)
            new.append(address)
        if self.checker is not None:
            for gone in old.values():
                self.checker.untrack(gone)
        changed = [id(a) for a in new] != [id(a) for a in target.addresses]
        target.addresses = new
        return changed

    # ------------------------------------------------------------------ picking
    def new_handle(self, hash_value: str | None) -> Handle:
        return Handle(hash_value)

    def get_peer(self, handle: Handle) -> Address:
        """The address for this try of ``handle``'s request.

        Raises:
            NoPeerError: 503 ``failure to get a peer from the ring-balancer``.
        """
        previous = handle.address
        if previous is not None:
            handle.failed.add(previous)
            self.release(handle)
        if self.threshold > 0 and not self.healthy():
            raise NoPeerError(503, NO_PEER, "Balancer is unhealthy")
        address = self._algorithm.pick(handle)
        if address is None:
            raise NoPeerError(503, NO_PEER, "No peers are available")
        handle.address = address
        if self.uses_connections:
            address.connections += 1
            handle.counted = True
        return address

    def release(self, handle: Handle) -> None:
        """The request is done with its current address (least-connections bookkeeping; idempotent)."""
        address = handle.address
        if handle.counted and address is not None:
            handle.counted = False
            address.connections -= 1

    def healthy(self) -> bool:
        """Kong's balancer health: the available share of the total weight is above ``threshold`` percent."""
        total = 0
        available = 0
        for address in self.addresses:
            total += address.weight
            if address.health.available:
                available += address.weight
        if total == 0:
            return False
        return available / total * 100 > self.threshold

    # ------------------------------------------------------------------ passive health (circuit breaker)
    def report_http_status(self, handle: Handle, status: int) -> None:
        checker = self.checker
        if checker is not None and handle.address is not None:
            checker.report_http_status(handle.address.health, status, "passive")

    def report_tcp_failure(self, handle: Handle) -> None:
        checker = self.checker
        if checker is not None and handle.address is not None:
            checker.report_tcp_failure(handle.address.health, "passive")

    def report_timeout(self, handle: Handle) -> None:
        checker = self.checker
        if checker is not None and handle.address is not None:
            checker.report_timeout(handle.address.health, "passive")

    # ------------------------------------------------------------------ hashing
    def hash_value(
        self,
        remote_addr: str,
        header: Callable[[str], str | None],
        path: str,
        query: str,
        captures: Mapping[str, str] | None,
        consumer_id: str | None,
        handle: Handle,
    ) -> str | None:
        """Kong's ``get_value_to_hash``: ``hash_on``, then ``hash_fallback``; None when nothing applies.

        ``handle.set_cookie`` receives the ``Set-Cookie`` value when ``hash_on = cookie`` had to create the cookie.
        The sources were compiled from the upstream row with the balancer (``_hash_steps``): no row is read here.
        """
        request = _HashRequest(remote_addr, header, path, query, captures, consumer_id, handle, self._cookie_path)
        for source, parameter in self._hash_steps:
            value = source(parameter, request)
            if value is not None:
                return value
        return None


class _HashRequest(NamedTuple):
    """What a hash source may read of the request."""

    remote_addr: str
    header: Callable[[str], str | None]
    path: str
    query: str
    captures: Mapping[str, str] | None
    consumer_id: str | None
    handle: Handle
    cookie_path: str


HashSource = Callable[[Any, _HashRequest], "str | None"]


def _from_cookie(name: str, request: _HashRequest) -> str | None:
    """The cookie's value; without the cookie, a new one (the response sets it, ``Handle.set_cookie``)."""
    value = _cookie(request.header("cookie"), name)
    if value is None:
        value = str(uuid.uuid4())
        request.handle.set_cookie = f"{name}={value}; Path={request.cookie_path}; Same-Site=Lax; HttpOnly"
    return value


#: ``hash_on`` / ``hash_fallback`` -> (the value's source, the row field naming its parameter for each of the two)
_HASH_SOURCES: dict[str, tuple[HashSource, tuple[str, str] | None]] = {
    "consumer": (lambda _, r: r.consumer_id, None),
    "ip": (lambda _, r: r.remote_addr, None),
    "header": (lambda name, r: r.header(name) if name else None, ("hash_on_header", "hash_fallback_header")),
    "cookie": (_from_cookie, ("hash_on_cookie", "hash_on_cookie")),
    "path": (lambda _, r: r.path, None),
    "query_arg": (
        lambda name, r: _query_arg(r.query, name) if name else None,
        ("hash_on_query_arg", "hash_fallback_query_arg"),
    ),
    "uri_capture": (
        lambda group, r: r.captures.get(group) if r.captures and group is not None else None,
        ("hash_on_uri_capture", "hash_fallback_uri_capture"),
    ),
}


def _hash_steps(row: Mapping[str, Any]) -> tuple[tuple[HashSource, Any], ...]:
    """``hash_on`` then ``hash_fallback`` compiled: each a source and its parameter (header name lowercased, query
    argument, capture group as text, cookie name); ``none`` ends the list, as in Kong."""
    steps: list[tuple[HashSource, Any]] = []
    for which, kind in enumerate((row.get("hash_on") or "none", row.get("hash_fallback") or "none")):
        if kind == "none":
            break
        entry = _HASH_SOURCES.get(kind)
        if entry is None:
            continue  # not a kind the schema allows; Kong's lookup finds no value for it either
        source, fields = entry
        parameter = row.get(fields[which]) if fields is not None else None
        if kind == "header" and parameter:
            parameter = str(parameter).lower()
        elif kind == "cookie":
            parameter = str(parameter or "")
        elif kind == "uri_capture" and parameter is not None:
            parameter = str(parameter)
        steps.append((source, parameter))
    return tuple(steps)


def _cookie(header: str | None, name: str) -> str | None:
    if not header or not name:
        return None
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value
    return None


def _query_arg(query: str, name: str) -> str | None:
    """nginx's ``get_uri_args`` for one name: several values are sorted and joined with commas, a bare key is
    ``true``."""
    from urllib.parse import unquote_plus

    values: list[str] = []
    for part in query.split("&"):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if unquote_plus(key) == name:
            values.append(unquote_plus(value) if sep else "true")
    if not values:
        return None
    return ",".join(sorted(values)) if len(values) > 1 else values[0]
