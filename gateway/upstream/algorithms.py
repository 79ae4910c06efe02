"""The three balancing algorithms of Kong's ring balancer, over a balancer's addresses.

Each algorithm is rebuilt (``rebuild(addresses)``) when the address set changes (a snapshot, a DNS answer) and
answers ``pick(handle)`` with an ``Address`` or None. An address is eligible when its weight is positive, it is
available (its health says so) and the request has not already failed on it; when every available address has
failed in this request, the failed ones become eligible again (Kong's least-connections rule, applied to all
three so that a retry always moves to another target while there is one).

- ``RoundRobin`` (``round_robin.lua``): a wheel holding each address ``weight / gcd(weights)`` times, shuffled
  once, walked by a pointer. Over one turn of the wheel the hits are exactly proportional to the weights.
- ``ConsistentHashing`` (``consistent_hashing.lua``, Ketama): a continuum of ``slots`` points (1000 when slots
  is below that); each address takes ``floor(weight / total * targets * 160)`` points at
  ``xxhash32("<ip>::<port> <i>") % points``, collisions moving on, in sorted order so every node builds the same
  ring. A request's value lands at ``xxhash32(value) % points`` and walks down to the first eligible address:
  the same value reaches the same address as in Kong.
- ``LeastConnections`` (``least_connections.lua``): the eligible address with the smallest
  ``(connections + 1) / weight``; a handle counts its address until it is released.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Protocol

from gateway.upstream.targets import Address, Handle

__all__ = ["ALGORITHMS", "Algorithm", "ConsistentHashing", "LeastConnections", "RoundRobin", "xxhash32"]

_P1 = 2654435761
_P2 = 2246822519
_P3 = 3266489917
_P4 = 668265263
_P5 = 374761393
_M = 0xFFFFFFFF

SERVER_POINTS = 160
MIN_CONTINUUM_SIZE = 1000
MAX_CONTINUUM_SIZE = 2**32


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M


def xxhash32(data: bytes, seed: int = 0) -> int:
    """XXH32 as ``luaxxhash`` returns it: a *signed* 32-bit integer (LuaJIT's ``bit`` ops), so that
    ``xxhash32(v) % points`` (a floored modulo in Lua and in Python) lands where Kong's does."""
    n = len(data)
    i = 0
    if n >= 16:
        v1 = (seed + _P1 + _P2) & _M
        v2 = (seed + _P2) & _M
        v3 = seed & _M
        v4 = (seed - _P1) & _M
        limit = n - 16
        while i <= limit:
            lanes = [int.from_bytes(data[i + k : i + k + 4], "little") for k in (0, 4, 8, 12)]
            v1 = (_rotl((v1 + lanes[0] * _P2) & _M, 13) * _P1) & _M
            v2 = (_rotl((v2 + lanes[1] * _P2) & _M, 13) * _P1) & _M
            v3 = (_rotl((v3 + lanes[2] * _P2) & _M, 13) * _P1) & _M
            v4 = (_rotl((v4 + lanes[3] * _P2) & _M, 13) * _P1) & _M
            i += 16
        h = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & _M
    else:
        h = (seed + _P5) & _M
    h = (h + n) & _M
    while i <= n - 4:
        h = (h + int.from_bytes(data[i : i + 4], "little") * _P3) & _M
        h = (_rotl(h, 17) * _P4) & _M
        i += 4
    while i < n:
        h = (h + data[i] * _P5) & _M
        h = (_rotl(h, 11) * _P1) & _M
        i += 1
    h ^= h >> 15
    h = (h * _P2) & _M
    h ^= h >> 13
    h = (h * _P3) & _M
    h ^= h >> 16
    return h - 0x100000000 if h & 0x80000000 else h


class Algorithm(Protocol):
    """What a balancer asks of its algorithm."""

    def rebuild(self, addresses: Sequence[Address], targets_count: int) -> None: ...

    def pick(self, handle: Handle) -> Address | None: ...


class RoundRobin:
    """Kong's shuffled weighted wheel."""

    __slots__ = ("_pointer", "_wheel")

    def __init__(self, slots: int = 0) -> None:
        self._wheel: list[Address] = []
        self._pointer = 0

    def rebuild(self, addresses: Sequence[Address], targets_count: int) -> None:
        weights = [a.weight for a in addresses if a.weight > 0]
        divisor = 0
        for w in weights:
            divisor = math.gcd(divisor, w)
        wheel: list[Address] = []
        for address in addresses:
            if address.weight > 0:
                wheel.extend([address] * (address.weight // divisor))
        random.shuffle(wheel)
        self._wheel = wheel
        self._pointer = random.randrange(len(wheel)) if wheel else 0

    def pick(self, handle: Handle) -> Address | None:
        wheel = self._wheel
        size = len(wheel)
        if not size:
            return None
        for relaxed in (False, True):
            if relaxed and not handle.failed:
                break
            pointer = self._pointer
            for _ in range(size):
                pointer = pointer + 1 if pointer + 1 < size else 0
                address = wheel[pointer]
                if address.weight > 0 and address.health.available and (relaxed or address not in handle.failed):
                    self._pointer = pointer
                    return address
        return None


class ConsistentHashing:
    """Kong's Ketama continuum (see the module docstring)."""

    __slots__ = ("_continuum", "points")

    def __init__(self, slots: int = 0) -> None:
        self.points = slots if MIN_CONTINUUM_SIZE <= slots <= MAX_CONTINUUM_SIZE else MIN_CONTINUUM_SIZE
        self._continuum: list[Address | None] = []

    def rebuild(self, addresses: Sequence[Address], targets_count: int) -> None:
        points = self.points
        continuum: list[Address | None] = [None] * points
        total = sum(a.weight for a in addresses)
        ordered = sorted(addresses, key=lambda a: (a.target.name, a.target.port, f"{a.ip}:{a.port}"))
        for address in ordered:
            if total <= 0:
                break
            entries = math.floor(address.weight / total * targets_count * SERVER_POINTS)
            if address.weight > 0 and entries == 0:
                entries = 1
            i = 1
            while i <= entries:
                index = xxhash32(f"{address.ip}::{address.port} {i}".encode()) % points
                if continuum[index] is None:
                    continuum[index] = address
                else:
                    entries += 1  # a collision: one more point, as Kong does
                i += 1
                if i > points:
                    break
        self._continuum = continuum

    def index_of(self, value: str) -> int:
        """Where a request's hash value lands (0-based; Kong's index minus one)."""
        return xxhash32(value.encode()) % self.points

    def pick(self, handle: Handle) -> Address | None:
        continuum = self._continuum
        if not continuum:
            return None
        if handle.hash_index < 0:
            handle.hash_index = self.index_of(handle.hash_value or "")
        points = self.points
        for relaxed in (False, True):
            if relaxed and not handle.failed:
                break
            index = handle.hash_index
            for _ in range(points):
                address = continuum[index]
                if (
                    address is not None
                    and address.weight > 0
                    and address.health.available
                    and (relaxed or address not in handle.failed)
                ):
                    return address
                index = index - 1 if index > 0 else points - 1
        return None


class LeastConnections:
    """Fewest in-flight requests relative to weight; ties rotate (Kong's heap does not keep a fixed order among
    equals either, so sequential requests on an idle balancer spread instead of all going to the first)."""

    __slots__ = ("_addresses", "_start")

    def __init__(self, slots: int = 0) -> None:
        self._addresses: list[Address] = []
        self._start = 0

    def rebuild(self, addresses: Sequence[Address], targets_count: int) -> None:
        self._addresses = [a for a in addresses if a.weight > 0]
        self._start = 0

    def pick(self, handle: Handle) -> Address | None:
        addresses = self._addresses
        count = len(addresses)
        if not count:
            return None
        start = self._start
        for relaxed in (False, True):
            if relaxed and not handle.failed:
                break
            best: Address | None = None
            best_at = 0
            best_score = 0.0
            for offset in range(count):
                at = (start + offset) % count
                address = addresses[at]
                if not address.health.available or (not relaxed and address in handle.failed):
                    continue
                score = (address.connections + 1) / address.weight
                if best is None or score < best_score:
                    best, best_at, best_score = address, at, score
            if best is not None:
                self._start = (best_at + 1) % count
                return best
        return None


#: ``upstreams.algorithm`` -> class (``latency``, Kong's EWMA of response times, is not reproduced: round-robin)
ALGORITHMS: dict[str, type[RoundRobin] | type[ConsistentHashing] | type[LeastConnections]] = {
    "round-robin": RoundRobin,
    "consistent-hashing": ConsistentHashing,
    "least-connections": LeastConnections,
    "latency": RoundRobin,
}
