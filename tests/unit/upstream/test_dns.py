"""The resolver: hosts file, a real UDP exchange with record TTLs, negative answers, stale data."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.upstream.dns import DnsCache, DnsConfig, NoPeerError


class _FakeDns(asyncio.DatagramProtocol):
    """Answers A queries from ``records`` (name -> (ips, ttl)); unknown names get NXDOMAIN; counts queries."""

    def __init__(self, records: dict[str, tuple[list[str], int]]) -> None:
        self.records = records
        self.queries: list[tuple[str, int]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        qid = data[:2]
        offset, labels = 12, []
        while data[offset]:
            labels.append(data[offset + 1 : offset + 1 + data[offset]].decode())
            offset += 1 + data[offset]
        question = data[12 : offset + 5]
        qtype = struct.unpack("!H", data[offset + 1 : offset + 3])[0]
        name = ".".join(labels)
        self.queries.append((name, qtype))
        known = self.records.get(name)
        if known is None:
            reply = qid + struct.pack("!HHHHH", 0x8183, 1, 0, 0, 0) + question
        else:
            ips, ttl = known if qtype == 1 else ([], 0)
            answers = b"".join(b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, ttl, 4) + socket.inet_aton(ip) for ip in ips)
            reply = qid + struct.pack("!HHHHH", 0x8180, 1, len(ips), 0, 0) + question + answers
        assert self.transport is not None
        self.transport.sendto(reply, addr)


@pytest.fixture
async def fake_dns() -> AsyncIterator[tuple[_FakeDns, int]]:
    loop = asyncio.get_running_loop()
    proto = _FakeDns({"svc.test": (["10.1.1.1", "10.1.1.2"], 1), "long.test": (["10.2.2.2"], 300)})
    transport, _ = await loop.create_datagram_endpoint(lambda: proto, local_addr=("127.0.0.1", 0))
    yield proto, transport.get_extra_info("sockname")[1]
    transport.close()


def _cache(tmp_path: Path, port: int, **kw: float) -> DnsCache:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n10.9.9.9 pinned.test # comment\n")
    return DnsCache(DnsConfig(servers=(("127.0.0.1", port),), hostsfile=str(hosts), resolv_conf="/nonexistent", **kw))


async def test_records_are_cached_for_their_ttl(tmp_path: Path, fake_dns: tuple[_FakeDns, int]) -> None:
    server, port = fake_dns
    cache = _cache(tmp_path, port)
    answer = await cache.lookup("svc.test")
    assert answer.addresses == ("10.1.1.1", "10.1.1.2") and answer.source == "A"
    assert 0.5 < answer.expires - time.monotonic() <= 1.0
    await cache.lookup("svc.test")
    assert server.queries == [("svc.test", 1)]  # served from the cache
    assert cache.cached("svc.test") == ["10.1.1.1", "10.1.1.2"]
    long = await cache.lookup("long.test")
    assert long.expires - time.monotonic() > 290


async def test_first_cached_is_cached_first_address(tmp_path: Path, fake_dns: tuple[_FakeDns, int]) -> None:
    """The request path's read: the first fresh address, None for a name never looked up, a negative answer, or an
    expired one (what sends a request down the resolving path)."""
    _server, port = fake_dns
    cache = _cache(tmp_path, port, not_found_ttl=30)
    assert cache.first_cached("svc.test") is None
    await cache.lookup("svc.test")
    assert cache.first_cached("svc.test") == "10.1.1.1" == (cache.cached("svc.test") or [""])[0]
    with pytest.raises(NoPeerError):
        await cache.resolve("nope.test")
    assert cache.first_cached("nope.test") is None and cache.cached("nope.test") is None
    entry = cache.peek("svc.test")
    assert entry is not None
    cache._entries["svc.test"] = dataclasses.replace(entry, expires=time.monotonic() - 1)
    assert cache.first_cached("svc.test") is None and cache.cached("svc.test") is None


async def test_hosts_file_first_and_never_expires(tmp_path: Path, fake_dns: tuple[_FakeDns, int]) -> None:
    server, port = fake_dns
    cache = _cache(tmp_path, port)
    assert (await cache.resolve("pinned.test")) == ["10.9.9.9"]
    assert (await cache.lookup("localhost")).expires == float("inf")
    assert server.queries == []


async def test_not_found_is_a_503_and_cached(tmp_path: Path, fake_dns: tuple[_FakeDns, int]) -> None:
    server, port = fake_dns
    cache = _cache(tmp_path, port, not_found_ttl=30)
    with pytest.raises(NoPeerError) as err:
        await cache.resolve("nope.test")
    assert err.value.message == "name resolution failed" and err.value.detail == "dns server error: 3 name error"
    with pytest.raises(NoPeerError):
        await cache.resolve("nope.test")
    assert server.queries == [("nope.test", 1)]


async def test_valid_ttl_overrides_and_concurrent_lookups_share_one_query(
    tmp_path: Path, fake_dns: tuple[_FakeDns, int]
) -> None:
    server, port = fake_dns
    cache = _cache(tmp_path, port, valid_ttl=60)
    answers = await asyncio.gather(*(cache.lookup("svc.test") for _ in range(5)))
    assert len(server.queries) == 1
    assert answers[0].expires - time.monotonic() > 50
