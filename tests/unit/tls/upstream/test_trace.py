"""``gateway.tls.upstream.trace`` / ``origins``: where each value of a compiled profile came from, decided by the
compiler, and the records built from it (an unusable certificate, a missing CA, the system store, a failure)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from gateway.settings import load_settings
from gateway.tls.engine.errors import TlsHandshakeError
from gateway.tls.upstream.connect import describe_handshake_error
from gateway.tls.upstream.profile import ContextCache, UpstreamTlsCompiler, UpstreamTlsProfile
from gateway.tls.upstream.trace import UpstreamCertRecord, profile_json, trust_record
from tests.fixtures.certs import Issued, make_ca, make_cert


@pytest.fixture(scope="module")
def leaf() -> Issued:
    return make_cert("one.test", issuer=make_ca("Root", key_type="ec"), key_type="ec")


def _profile(tmp_path: Path, row: dict[str, Any], config: Any = None, **settings: str) -> UpstreamTlsProfile:
    values = {"prefix": str(tmp_path), **settings}
    compiler = UpstreamTlsCompiler(load_settings(env={}, overrides=values), config or {}, ContextCache())
    service = {"id": str(uuid.uuid4()), "protocol": "https", "host": "backend.test", **row}
    profile = compiler.profile(service)
    assert profile is not None
    return profile


def test_a_certificate_that_cannot_be_used_is_named_and_marked(tmp_path: Path) -> None:
    missing = str(uuid.uuid4())
    profile = _profile(tmp_path, {"client_certificate": {"id": missing}})
    assert UpstreamCertRecord(profile).pairs() == (
        ("from", "service"),
        ("certificate", missing),
        ("status", "unusable"),
    )
    body = profile_json(profile)
    assert body["client_certificate"] == {"from": "service", "id": missing, "subject": None, "usable": False}
    assert body["notices"][0]["level"] == "error"


def test_a_missing_ca_leaves_the_global_store_in_place(tmp_path: Path) -> None:
    """Kong: CRIT line, the store is left alone; the record says which store was actually used."""
    profile = _profile(tmp_path, {"tls_verify": True, "ca_certificates": [str(uuid.uuid4())]})
    body = profile_json(profile)
    assert body["trust"] == {"store": "empty", "from": "default", "ca_certificates": []}
    assert body["verify"] == {"value": True, "from": "service"}
    assert body["notices"][0]["level"] == "crit"


def test_globals_and_the_system_store(tmp_path: Path, leaf: Issued) -> None:
    settings = {"proxy_ssl_verify": "on", "proxy_ssl_trusted_certificate": "system", "proxy_ssl_verify_depth": "3"}
    body = profile_json(_profile(tmp_path, {}, **settings))
    assert body["verify"] == {"value": True, "from": "global setting proxy_ssl_verify"}
    assert body["trust"]["store"] == "system"
    assert body["trust"]["from"] == "global setting proxy_ssl_trusted_certificate"
    assert body["depth"] == {"value": 3, "from": "global setting proxy_ssl_verify_depth"}
    # a global holding Kong's default value reads "default": it means the same
    assert profile_json(_profile(tmp_path, {}, proxy_ssl_verify_depth="1"))["depth"]["from"] == "default"


def test_the_trust_record_of_a_failed_and_of_an_unverified_try(tmp_path: Path, leaf: Issued) -> None:
    profile = _profile(tmp_path, {"tls_verify": True})
    failure = describe_handshake_error(TlsHandshakeError.verify_failed(20, 0, b"", "upstream SSL "))
    failed = dict(trust_record(profile, "backend.test:8443", failure=failure).pairs())
    assert (failed["sni"], failed["host_checked"]) == ("backend.test", "backend.test")
    assert (failed["result"], failed["resumed"], failed["connection"]) == (
        "20:unable to get local issuer certificate",
        "none",
        "new",
    )
    mismatch = TlsHandshakeError('upstream SSL certificate does not match "x"', kind="hostname")
    assert dict(trust_record(profile, "x", failure=describe_handshake_error(mismatch)).pairs())["result"] == (
        "host-mismatch"
    )
    unverified = dict(trust_record(_profile(tmp_path, {}), "10.0.0.1").pairs())
    assert (unverified["sni"], unverified["host_checked"], unverified["result"]) == ("none", "none", "not-checked")
