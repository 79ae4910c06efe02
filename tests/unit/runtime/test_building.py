"""``gateway.runtime.building`` + ``snapshot``: a master with workers builds only what it uses; the upstream TLS
files are read once per settings load."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

from gateway.runtime import building
from gateway.runtime.snapshot import build_snapshot
from gateway.settings import ConfigError, load_settings
from tests.fixtures.certs import make_ca
from tests.integration.proxy.harness import config, route, service


def _export() -> dict[str, list[dict[str, object]]]:
    svc = service("backend.test")
    upstream = {"id": str(uuid.uuid4()), "name": "backend.test", "algorithm": "round-robin", "slots": 100}
    target = {"id": str(uuid.uuid4()), "target": "127.0.0.1:8001", "weight": 100, "upstream": {"id": upstream["id"]}}
    return config([svc], [route(svc, paths=["/"])], upstreams=[upstream], targets=[target])


def test_a_master_builds_the_balancers_only(tmp_path: Path) -> None:
    settings = load_settings(env={}, overrides={"prefix": str(tmp_path), "proxy_listen": "127.0.0.1:0"})
    full = build_snapshot(_export(), settings)
    master = build_snapshot(_export(), settings, proxy=False)
    assert len(full.router.routes) == 1 and len(full.services) == 1
    assert master.router.routes == [] and master.services == {} and master.certificates is None
    assert len(master.plugins) == 0
    balancer = master.balancers["backend.test"]
    assert [(a.ip, a.port) for a in balancer.addresses] == [("127.0.0.1", 8001)]


def test_a_master_still_refuses_a_global_file_a_worker_would(tmp_path: Path) -> None:
    missing = str(tmp_path / "no.pem")
    settings = load_settings(
        env={},
        overrides={
            "prefix": str(tmp_path),
            "client_ssl": "on",
            "client_ssl_cert": missing,
            "client_ssl_cert_key": missing,
        },
    )
    with pytest.raises(ConfigError, match=f"client_ssl_cert: failed loading {missing}"):
        build_snapshot(_export(), settings, proxy=False)


def test_who_serves_traffic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    one = load_settings(env={}, overrides={"prefix": str(tmp_path), "worker_processes": "1"})
    two = load_settings(env={}, overrides={"prefix": str(tmp_path), "worker_processes": "2"})
    monkeypatch.delitem(sys.modules, "gateway.runtime.worker", raising=False)
    assert building.serves_traffic(one)
    assert not building.serves_traffic(two)  # the master
    monkeypatch.setitem(sys.modules, "gateway.runtime.worker", sys.modules[__name__])
    assert building.serves_traffic(two)  # a worker


def test_the_global_trust_store_is_read_once_per_settings_load(tmp_path: Path) -> None:
    bundle = tmp_path / "trusted.pem"
    bundle.write_text(make_ca("Global Trust").cert_pem)
    overrides = {"prefix": str(tmp_path), "proxy_ssl_trusted_certificate": str(bundle)}
    settings = load_settings(env={}, overrides=overrides)
    first = building.upstream_tls(settings)
    digest = first.proxy_trust.digest
    bundle.unlink()  # a rebuild with the same settings (an Admin API write) reads no file
    assert building.upstream_tls(settings) is first
    assert building.upstream_tls(settings).proxy_trust.digest == digest
    reloaded = load_settings(env={}, overrides=overrides)  # SIGHUP: a new settings load reads the files again
    with pytest.raises(ConfigError, match="proxy_ssl_trusted_certificate: failed loading"):
        _ = building.upstream_tls(reloaded).proxy_trust


def test_worker_counters_are_summed_and_anything_else_in_an_answer_is_ignored() -> None:
    totals = {"total_requests": 1, "connections_active": 2}
    building.add_counters(totals, {"type": "stats", "counters": {"total_requests": 5, "connections_active": 1}})
    building.add_counters(totals, {"type": "stats", "counters": {"total_requests": "9", "unknown": 7}})
    building.add_counters(totals, {"type": "stats", "counters": ["total_requests"]})
    building.add_counters(totals, {"type": "stats"})
    assert totals == {"total_requests": 6, "connections_active": 3}
