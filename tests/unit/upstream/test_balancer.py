"""The balancer and its algorithms, without sockets: weights, health, retries, hashing, thresholds."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import pytest

from gateway.upstream.algorithms import ConsistentHashing, xxhash32
from gateway.upstream.balancer import Balancer, NoPeerError
from gateway.upstream.health import TargetHealth


def _upstream(**fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"id": str(uuid.uuid4()), "name": "up", "algorithm": "round-robin", "slots": 10000}
    row.update(fields)
    return row


def _targets(*specs: tuple[str, int]) -> list[dict[str, Any]]:
    return [
        {"id": str(uuid.uuid4()), "target": target, "weight": weight, "created_at": i}
        for i, (target, weight) in enumerate(specs)
    ]


def _down() -> TargetHealth:
    """The health of an address its checker marked down: the balancer skips it."""
    health = TargetHealth("0.0.0.0", 0, "down.test", None)
    health.state, health.available = "unhealthy", False
    return health


def _pick(balancer: Balancer, hash_value: str | None = None) -> str:
    handle = balancer.new_handle(hash_value)
    address = balancer.get_peer(handle)
    balancer.release(handle)
    return f"{address.ip}:{address.port}"


def test_xxhash32_matches_luaxxhash_signed_results() -> None:
    # luaxxhash's own test vectors (LuaJIT bit ops: signed 32-bit)
    assert xxhash32(b"aaaa") == -631806169
    assert xxhash32(b"a" * 16) == 1571609996
    assert xxhash32(b"a" * 32) == -1557966914
    assert xxhash32(b"") == 0x02CC5D05
    assert xxhash32(b"a") == 1426945110


def test_round_robin_spreads_exactly_by_weight_over_whole_turns() -> None:
    b = Balancer(_upstream(), _targets(("10.0.0.1:80", 100), ("10.0.0.2:80", 50), ("10.0.0.3:80", 50)))
    hits = Counter(_pick(b) for _ in range(400))  # the wheel has 4 slots: 100 whole turns
    assert hits == {"10.0.0.1:80": 200, "10.0.0.2:80": 100, "10.0.0.3:80": 100}


def test_weight_zero_is_disabled_and_all_zero_is_no_peer() -> None:
    b = Balancer(_upstream(), _targets(("10.0.0.1:80", 0), ("10.0.0.2:80", 10)))
    assert {_pick(b) for _ in range(20)} == {"10.0.0.2:80"}
    empty = Balancer(_upstream(), _targets(("10.0.0.1:80", 0)))
    with pytest.raises(NoPeerError) as err:
        _pick(empty)
    assert err.value.status == 503 and err.value.message == "failure to get a peer from the ring-balancer"


@pytest.mark.parametrize("algorithm", ["round-robin", "least-connections", "consistent-hashing"])
def test_unavailable_addresses_are_skipped_and_retries_move_on(algorithm: str) -> None:
    b = Balancer(
        _upstream(algorithm=algorithm, hash_on="ip" if algorithm == "consistent-hashing" else "none"),
        _targets(("10.0.0.1:80", 10), ("10.0.0.2:80", 10), ("10.0.0.3:80", 10)),
    )
    b.addresses[0].health = _down()
    assert "10.0.0.1:80" not in {_pick(b, f"client-{i}") for i in range(30)}
    handle = b.new_handle("client-x")
    first = b.get_peer(handle)
    second = b.get_peer(handle)  # a retry: the failed address is avoided while another is available
    assert second is not first and second.health.available
    # every available address failed in this request: they become eligible again (never a 503 for that)
    assert b.get_peer(handle) in (first, second)


def test_consistent_hashing_is_stable_and_spreads() -> None:
    b = Balancer(
        _upstream(algorithm="consistent-hashing", hash_on="header", hash_on_header="x-user"),
        _targets(("10.0.0.1:80", 100), ("10.0.0.2:80", 100), ("10.0.0.3:80", 100)),
    )
    seen = {f"user{i}": _pick(b, f"user{i}") for i in range(300)}
    assert all(_pick(b, key) == where for key, where in seen.items())
    spread = Counter(seen.values())
    assert len(spread) == 3 and min(spread.values()) > 50
    # a down address moves only its own keys
    down = b.addresses[0]
    down.health = _down()
    moved = {key for key, where in seen.items() if _pick(b, key) != where}
    assert moved == {key for key, where in seen.items() if where == f"{down.ip}:{down.port}"}


def test_consistent_hashing_uses_kongs_continuum_size_rules() -> None:
    assert ConsistentHashing(10).points == 1000  # below the minimum: Kong's default size
    assert ConsistentHashing(10000).points == 10000


def test_least_connections_prefers_the_least_loaded_relative_to_weight() -> None:
    b = Balancer(_upstream(algorithm="least-connections"), _targets(("10.0.0.1:80", 10), ("10.0.0.2:80", 20)))
    handles = [b.new_handle(None) for _ in range(3)]
    picked = [b.get_peer(h) for h in handles]
    # scores (connections + 1) / weight: .2 (0.05), then a tie at 0.1 (rotating: .1), then .2 (0.1 < 0.2)
    assert [f"{a.ip}" for a in picked].count("10.0.0.2") == 2
    for h in handles:
        b.release(h)
        b.release(h)  # idempotent
    assert all(a.connections == 0 for a in b.addresses)


def test_threshold_makes_the_whole_balancer_unhealthy() -> None:
    b = Balancer(_upstream(healthchecks={"threshold": 50}), _targets(("10.0.0.1:80", 10), ("10.0.0.2:80", 10)))
    assert _pick(b)
    b.addresses[0].health = _down()  # 50% available is not above 50%
    with pytest.raises(NoPeerError) as err:
        _pick(b)
    assert err.value.detail == "Balancer is unhealthy"


def test_hash_values_follow_hash_on_then_fallback() -> None:
    b = Balancer(
        _upstream(
            algorithm="consistent-hashing",
            hash_on="header",
            hash_on_header="X-User",
            hash_fallback="query_arg",
            hash_fallback_query_arg="id",
        ),
        _targets(("10.0.0.1:80", 10)),
    )
    handle = b.new_handle(None)
    headers = {"x-user": "alice"}
    no_headers: dict[str, str] = {}
    assert b.hash_value("1.2.3.4", headers.get, "/p", "id=7", None, None, handle) == "alice"
    assert b.hash_value("1.2.3.4", no_headers.get, "/p", "id=9&id=7", None, None, handle) == "7,9"
    assert b.hash_value("1.2.3.4", no_headers.get, "/p", "", None, None, handle) is None
    cookie = Balancer(
        _upstream(algorithm="consistent-hashing", hash_on="cookie", hash_on_cookie="sticky"), _targets(("a:1", 1))
    )
    assert cookie.hash_value("ip", {"cookie": "a=1; sticky=v1"}.get, "/", "", None, None, handle) == "v1"
    fresh = cookie.new_handle(None)
    value = cookie.hash_value("ip", no_headers.get, "/", "", None, None, fresh)
    assert fresh.set_cookie == f"sticky={value}; Path=/; Same-Site=Lax; HttpOnly"


def test_name_targets_have_no_address_until_resolved() -> None:
    b = Balancer(_upstream(), _targets(("localhost:8080", 10), ("10.0.0.9:80", 10)))
    assert b.unresolved() and b.needs_dns(0.0)
    assert {_pick(b) for _ in range(5)} == {"10.0.0.9:80"}
