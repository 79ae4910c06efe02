"""Name resolution for the proxy: a TTL-respecting cache over the hosts file and a small async DNS client.

Why our own client: ``getaddrinfo`` (even run in the loop's executor) hides record TTLs, and Kong's balancer
re-resolves target names when their records expire (``kong/runloop/balancer/targets.lua``). So names are looked
up the way Kong's resolver does, minus SRV:

1. the hosts file (``dns_hostsfile``, default ``/etc/hosts``): entries never expire;
2. ``A`` then, when there are none, ``AAAA`` queries over UDP to the ``dns_resolver`` servers (default: the
   ``nameserver`` lines of ``/etc/resolv.conf``), with the ``search`` list applied to names with fewer dots than
   ``ndots``; the answer's smallest TTL decides how long it is kept (``dns_valid_ttl`` overrides it);
3. a truncated answer, or no usable name server at all, falls back to ``loop.getaddrinfo`` (a thread of the
   loop's default executor, never a blocking call on the loop), cached for ``FALLBACK_TTL`` seconds.

Negative answers are kept ``dns_not_found_ttl`` seconds, server errors ``dns_error_ttl``; a record that expired
is still served for ``dns_stale_ttl`` seconds if refreshing it fails (Kong's stale data). Concurrent lookups of
one name share a single query.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "DNS_ERROR_TTL",
    "DNS_TTL",
    "FALLBACK_TTL",
    "DnsAnswer",
    "DnsCache",
    "DnsConfig",
    "NoPeerError",
]

#: kept for callers of the first version: the TTL of getaddrinfo answers and of errors
DNS_TTL = 30.0
DNS_ERROR_TTL = 1.0
FALLBACK_TTL = 30.0
QUERY_TIMEOUT = 2.0  # resolv.conf's default "timeout:5" is long for a proxy; attempts cover flaky servers

_TYPE_A = 1
_TYPE_CNAME = 5
_TYPE_AAAA = 28
_RCODE_NXDOMAIN = 3


class NoPeerError(Exception):
    """No address for this request; ``status`` and ``message`` are what Kong answers (a 503)."""

    def __init__(self, status: int, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    """One resolution: the addresses (IPv4 first), when it expires, and what produced it.

    ``source`` is Kong's ``dns`` field of the health endpoint: ``A``/``AAAA`` for records, or the error text.
    """

    addresses: tuple[str, ...]
    expires: float
    source: str
    error: str = ""


@dataclass(frozen=True, slots=True)
class DnsConfig:
    """The resolver's inputs (Kong's ``dns_*`` settings; ``None`` servers = read ``/etc/resolv.conf``)."""

    servers: tuple[tuple[str, int], ...] | None = None
    hostsfile: str = "/etc/hosts"
    valid_ttl: float | None = None
    stale_ttl: float = 3600.0
    not_found_ttl: float = 30.0
    error_ttl: float = DNS_ERROR_TTL
    resolv_conf: str = "/etc/resolv.conf"


def _parse_hosts(path: str) -> dict[str, list[str]]:
    hosts: dict[str, list[str]] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return hosts
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        try:
            ipaddress.ip_address(fields[0].split("%", 1)[0])
        except ValueError:
            continue
        for name in fields[1:]:
            hosts.setdefault(name.lower(), []).append(fields[0])
    return hosts


def _parse_resolv_conf(path: str) -> tuple[list[tuple[str, int]], list[str], int]:
    servers: list[tuple[str, int]] = []
    search: list[str] = []
    ndots = 1
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return servers, search, ndots
    for line in lines:
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            servers.append((fields[1], 53))
        elif fields[0] in ("search", "domain"):
            search = fields[1:]
        elif fields[0] == "options":
            for opt in fields[1:]:
                if opt.startswith("ndots:") and opt[6:].isdigit():
                    ndots = int(opt[6:])
    return servers, search, ndots


def _order(addresses: Sequence[str]) -> tuple[str, ...]:
    v4 = [a for a in addresses if ":" not in a]
    v6 = [a for a in addresses if ":" in a]
    return tuple(dict.fromkeys(v4 + v6))


# ------------------------------------------------------------------------------------------------ wire format
def _encode_query(qid: int, name: str, qtype: int) -> bytes:
    labels = b"".join(bytes([len(p)]) + p for p in (lbl.encode("idna") for lbl in name.rstrip(".").split(".")) if p)
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\x00" + struct.pack("!HH", qtype, 1)


def _skip_name(data: bytes, offset: int) -> int:
    while True:
        length = data[offset]
        if length & 0xC0 == 0xC0:
            return offset + 2
        offset += 1
        if length == 0:
            return offset
        offset += length


class _Reply:
    __slots__ = ("addresses", "rcode", "truncated", "ttl")

    def __init__(self, rcode: int, truncated: bool, addresses: list[str], ttl: float) -> None:
        self.rcode = rcode
        self.truncated = truncated
        self.addresses = addresses
        self.ttl = ttl


def _decode_reply(data: bytes, qid: int, qtype: int) -> _Reply | None:
    """The A/AAAA records of an answer (CNAMEs followed within it); None for a reply to another query."""
    if len(data) < 12:
        return None
    rid, flags, qd, an, _ns, _ar = struct.unpack("!HHHHHH", data[:12])
    if rid != qid or not flags & 0x8000:
        return None
    offset = 12
    for _ in range(qd):
        offset = _skip_name(data, offset) + 4
    addresses: list[str] = []
    ttl = float("inf")
    for _ in range(an):
        offset = _skip_name(data, offset)
        rtype, _rclass, rttl, rdlen = struct.unpack("!HHIH", data[offset : offset + 10])
        offset += 10
        rdata = data[offset : offset + rdlen]
        offset += rdlen
        if rtype == qtype == _TYPE_A and rdlen == 4:
            addresses.append(socket.inet_ntop(socket.AF_INET, rdata))
        elif rtype == qtype == _TYPE_AAAA and rdlen == 16:
            addresses.append(socket.inet_ntop(socket.AF_INET6, rdata))
        elif rtype != _TYPE_CNAME:
            continue
        ttl = min(ttl, float(rttl))
    return _Reply(flags & 0x000F, bool(flags & 0x0200), addresses, ttl if addresses else 0.0)


class _QueryProtocol(asyncio.DatagramProtocol):
    def __init__(self, waiter: asyncio.Future[bytes], qid: int) -> None:
        self.waiter = waiter
        self.qid = qid

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        if len(data) >= 2 and struct.unpack("!H", data[:2])[0] == self.qid and not self.waiter.done():
            self.waiter.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.waiter.done():
            self.waiter.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("closed"))


async def _udp_query(server: tuple[str, int], name: str, qtype: int, timeout: float) -> _Reply:
    loop = asyncio.get_running_loop()
    qid = random.getrandbits(16)
    waiter: asyncio.Future[bytes] = loop.create_future()
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _QueryProtocol(waiter, qid), remote_addr=server, family=family
    )
    try:
        transport.sendto(_encode_query(qid, name, qtype))
        async with asyncio.timeout(timeout):
            reply = _decode_reply(await waiter, qid, qtype)
    finally:
        transport.close()
    if reply is None:
        raise OSError("malformed DNS reply")
    return reply


class _Unusable(Exception):
    """The DNS path cannot answer (truncation, no server): use getaddrinfo instead."""


# ------------------------------------------------------------------------------------------------ the cache
class DnsCache:
    """Name -> ``DnsAnswer``, refreshed when the TTL says so. ``cached``/``resolve`` keep the first version's API."""

    __slots__ = ("_config", "_entries", "_hosts", "_inflight", "_ndots", "_search", "_servers")

    def __init__(self, config: DnsConfig | None = None) -> None:
        self._config = config = config or DnsConfig()
        self._entries: dict[str, DnsAnswer] = {}
        self._inflight: dict[str, asyncio.Future[DnsAnswer]] = {}
        self._hosts = _parse_hosts(config.hostsfile)
        servers, self._search, self._ndots = _parse_resolv_conf(config.resolv_conf)
        self._servers = list(config.servers) if config.servers is not None else servers

    # -- the first version's interface (services whose host is a name) ---------------------------------------
    def _fresh(self, name: str) -> DnsAnswer | None:
        """The cached answer for ``name`` if it has addresses and has not expired, else None (a lookup is needed)."""
        entry = self._entries.get(name)
        if entry is not None and entry.addresses and entry.expires > time.monotonic():
            return entry
        return None

    def cached(self, name: str) -> list[str] | None:
        """The fresh addresses of ``name``, or None when a lookup is needed."""
        entry = self._fresh(name)
        return list(entry.addresses) if entry is not None else None

    def first_cached(self, name: str) -> str | None:
        """The first fresh address of ``name`` (the one a try connects to), or None when a lookup is needed:
        ``cached`` without its copy of the list, for the request path."""
        entry = self._fresh(name)
        return entry.addresses[0] if entry is not None else None

    async def resolve(self, name: str) -> list[str]:
        """All addresses of ``name`` (IPv4 first). Raises ``NoPeerError`` (503) when there are none."""
        answer = await self.lookup(name)
        if not answer.addresses:
            raise NoPeerError(503, "name resolution failed", answer.error)
        return list(answer.addresses)

    # -- answers with their TTL (balancer targets) -----------------------------------------------------------
    def peek(self, name: str) -> DnsAnswer | None:
        """The cached answer for ``name`` whatever its age (None if never resolved)."""
        return self._entries.get(name)

    async def lookup(self, name: str) -> DnsAnswer:
        """A fresh answer for ``name``: cached, or one shared query. Never raises; errors are in the answer."""
        now = time.monotonic()
        entry = self._entries.get(name)
        if entry is not None and entry.expires > now:
            return entry
        pending = self._inflight.get(name)
        if pending is None:
            pending = asyncio.ensure_future(self._refresh(name, entry))
            self._inflight[name] = pending
            pending.add_done_callback(lambda _f: self._inflight.pop(name, None))
        return await asyncio.shield(pending)

    async def _refresh(self, name: str, previous: DnsAnswer | None) -> DnsAnswer:
        answer = await self._query(name)
        now = time.monotonic()
        if (
            not answer.addresses
            and previous is not None
            and previous.addresses
            and previous.expires + self._config.stale_ttl > now
            and answer.source != "name error"
        ):
            # a failed refresh keeps serving the stale record for a while (Kong's dns_stale_ttl)
            answer = DnsAnswer(previous.addresses, now + self._config.error_ttl, previous.source, answer.error)
        self._entries[name] = answer
        return answer

    async def _query(self, name: str) -> DnsAnswer:
        config = self._config
        now = time.monotonic()
        listed = self._hosts.get(name.lower().rstrip("."))
        if listed:
            return DnsAnswer(_order(listed), float("inf"), "A" if ":" not in listed[0] else "AAAA")
        try:
            if not self._servers:
                raise _Unusable
            for candidate in self._candidates(name):
                for qtype, label in ((_TYPE_A, "A"), (_TYPE_AAAA, "AAAA")):
                    reply = await self._ask(candidate, qtype)
                    if reply.truncated:
                        raise _Unusable
                    if reply.rcode not in (0, _RCODE_NXDOMAIN):
                        detail = f"dns server error: {reply.rcode}"
                        return DnsAnswer((), now + config.error_ttl, detail, detail)
                    if reply.addresses:
                        ttl = config.valid_ttl if config.valid_ttl is not None else reply.ttl
                        return DnsAnswer(_order(reply.addresses), now + ttl, label)
                    if reply.rcode == _RCODE_NXDOMAIN:
                        break
            detail = "dns server error: 3 name error"
            return DnsAnswer((), now + config.not_found_ttl, "name error", detail)
        except _Unusable:
            return await self._fallback(name)
        except (OSError, TimeoutError) as exc:
            detail = f"dns client error: {exc or 'timeout'}"
            return DnsAnswer((), now + config.error_ttl, detail, detail)

    def _candidates(self, name: str) -> list[str]:
        if name.endswith(".") or not self._search:
            return [name]
        qualified = [f"{name}.{domain}" for domain in self._search]
        return [name, *qualified] if name.count(".") >= self._ndots else [*qualified, name]

    async def _ask(self, name: str, qtype: int) -> _Reply:
        last: Exception = TimeoutError()
        for _attempt in range(2):
            for server in self._servers:
                try:
                    return await _udp_query(server, name, qtype, QUERY_TIMEOUT)
                except (OSError, TimeoutError) as exc:
                    last = exc
        raise last

    async def _fallback(self, name: str) -> DnsAnswer:
        config = self._config
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        try:
            infos = await loop.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            return DnsAnswer((), now + config.error_ttl, str(exc), str(exc))
        addresses = _order([str(info[4][0]) for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)])
        if not addresses:
            detail = "dns client error: 101 empty record received"
            return DnsAnswer((), now + config.error_ttl, detail, detail)
        ttl = config.valid_ttl if config.valid_ttl is not None else FALLBACK_TTL
        return DnsAnswer(addresses, now + ttl, "A" if ":" not in addresses[0] else "AAAA")


def config_from_settings(settings: object) -> DnsConfig:
    """``DnsConfig`` from the ``dns_*`` settings (absent ones keep their defaults)."""
    servers_raw: Sequence[str] = getattr(settings, "dns_resolver", ()) or ()
    servers: list[tuple[str, int]] = []
    for entry in servers_raw:
        host, port = entry, 53
        if entry.startswith("["):
            end = entry.find("]")
            host, rest = entry[1:end], entry[end + 1 :]
            port = int(rest[1:]) if rest.startswith(":") else 53
        elif entry.count(":") == 1:
            host, _, p = entry.partition(":")
            port = int(p)
        servers.append((host, port))
    valid = getattr(settings, "dns_valid_ttl", None)
    return DnsConfig(
        servers=tuple(servers) if servers else None,
        hostsfile=str(getattr(settings, "dns_hostsfile", "/etc/hosts")),
        valid_ttl=float(valid) if valid is not None else None,
        stale_ttl=float(getattr(settings, "dns_stale_ttl", 3600)),
        not_found_ttl=float(getattr(settings, "dns_not_found_ttl", 30)),
        error_ttl=float(getattr(settings, "dns_error_ttl", 1)),
    )
