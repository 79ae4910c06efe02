"""Kong's ``ssl_cipher_suite`` presets: what each resolves to, and what a real client can negotiate."""

from __future__ import annotations

import pathlib
import subprocess
from typing import Any

import pytest
from OpenSSL import SSL

from gateway.settings import ConfigError, Settings, load_settings
from gateway.tls.served.certificates import CertificateIndex, base_context, make_sni_callback
from gateway.tls.served.presets import (
    CIPHER_SUITES,
    FFDHE_GROUPS,
    TlsProfile,
    apply_profile,
    ffdhe_pem,
    protocol_range,
    tls_profile,
)
from tests.unit.tls.served.conftest import Pki
from tests.unit.tls.served.harness import s_client, tls_server


def _settings(tmp_path: pathlib.Path, **overrides: str) -> Settings:
    return load_settings(env={}, overrides={"prefix": str(tmp_path), **overrides})


def test_intermediate_is_the_default_and_ignores_protocol_settings(tmp_path: pathlib.Path) -> None:
    profile = tls_profile(_settings(tmp_path, ssl_protocols="TLSv1.3", ssl_prefer_server_ciphers="on"))
    assert profile.suite == "intermediate"
    assert profile.protocols == ("TLSv1.2", "TLSv1.3")  # ssl_protocols only counts with "custom"
    assert profile.prefer_server_ciphers is False
    assert profile.ciphers == CIPHER_SUITES["intermediate"].ciphers
    assert profile.dhparam == ffdhe_pem("ffdhe2048")
    assert profile.session_tickets is True and profile.session_timeout == 86400
    assert profile == TlsProfile.kong_default()


def test_modern_old_fips(tmp_path: pathlib.Path) -> None:
    modern = tls_profile(_settings(tmp_path, ssl_cipher_suite="modern"))
    assert modern.protocols == ("TLSv1.3",) and modern.ciphers == "HIGH:!aNULL:!MD5" and modern.dhparam is None
    old = tls_profile(_settings(tmp_path, ssl_cipher_suite="old", ssl_dhparam="ffdhe3072"))
    assert old.protocols == ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
    assert old.prefer_server_ciphers is True
    assert old.ciphers.endswith(":DES-CBC3-SHA") and old.conf_cipher_string == "DEFAULT:@SECLEVEL=0"
    assert old.dhparam == ffdhe_pem("ffdhe3072")  # "old" keeps the user's ssl_dhparam
    fips = tls_profile(_settings(tmp_path, ssl_cipher_suite="fips", ssl_dhparam="ffdhe3072"))
    assert fips.protocols == ("TLSv1.2",) and fips.ciphers == "TLSv1.2+FIPS:kRSA+FIPS:!eNULL:!aNULL"
    assert fips.dhparam is None and fips.prefer_server_ciphers is True


def test_custom_uses_the_settings(tmp_path: pathlib.Path) -> None:
    profile = tls_profile(
        _settings(
            tmp_path,
            ssl_cipher_suite="custom",
            ssl_ciphers="ECDHE-RSA-AES128-GCM-SHA256",
            ssl_protocols="TLSv1.2",
            ssl_prefer_server_ciphers="off",
            ssl_session_tickets="off",
            ssl_session_timeout="5m",
        )
    )
    assert profile.protocols == ("TLSv1.2",)
    assert profile.ciphers == "ECDHE-RSA-AES128-GCM-SHA256"
    assert profile.prefer_server_ciphers is False and profile.dhparam is None
    assert profile.session_tickets is False and profile.session_timeout == 300


def _has_fips_alias() -> bool:
    try:
        SSL.Context(SSL.TLS_SERVER_METHOD).set_cipher_list(b"FIPS")
    except SSL.Error:
        return False
    return True


def test_every_preset_compiles_with_this_openssl(tmp_path: pathlib.Path) -> None:
    for name in ("modern", "intermediate", "old"):
        apply_profile(SSL.Context(SSL.TLS_SERVER_METHOD), tls_profile(_settings(tmp_path, ssl_cipher_suite=name)))


def test_fips_preset_needs_an_openssl_with_the_fips_alias(tmp_path: pathlib.Path) -> None:
    """OpenSSL 4 dropped the ``FIPS`` cipher alias: nginx would refuse to start, and so do we (ConfigError)."""
    profile = tls_profile(_settings(tmp_path, ssl_cipher_suite="fips"))
    if _has_fips_alias():
        apply_profile(SSL.Context(SSL.TLS_SERVER_METHOD), profile)
    else:
        with pytest.raises(ConfigError, match=r"SSL_CTX_set_cipher_list\("):
            apply_profile(SSL.Context(SSL.TLS_SERVER_METHOD), profile)


def test_bad_custom_cipher_string_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="SSL_CTX_set_cipher_list"):
        apply_profile(SSL.Context(SSL.TLS_SERVER_METHOD), TlsProfile(ciphers="NOT-A-CIPHER"))


@pytest.mark.parametrize(
    ("protocols", "expected"),
    [
        (["TLSv1.2", "TLSv1.3"], (SSL.TLS1_2_VERSION, SSL.TLS1_3_VERSION, 0)),
        (["TLSv1.3"], (SSL.TLS1_3_VERSION, SSL.TLS1_3_VERSION, 0)),
        (["TLSv1", "TLSv1.3"], (SSL.TLS1_VERSION, SSL.TLS1_3_VERSION, SSL.OP_NO_TLSv1_1 | SSL.OP_NO_TLSv1_2)),
    ],
)
def test_protocol_range(protocols: list[str], expected: tuple[int, int, int]) -> None:
    assert protocol_range(protocols) == expected


def test_protocol_range_rejects_unknown() -> None:
    with pytest.raises(ConfigError, match="SSLv3"):
        protocol_range(["SSLv3"])


def test_tickets_off_sets_no_ticket_and_chain_is_never_auto_built() -> None:
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    apply_profile(ctx, TlsProfile(session_tickets=False))
    options: Any = getattr(ctx, "set_options")(0)  # noqa: B009  (returns the mask; the type stubs say None)
    assert options & SSL.OP_NO_TICKET
    assert not options & SSL.OP_CIPHER_SERVER_PREFERENCE
    assert ctx.get_timeout() == 86400
    mode: Any = ctx.set_mode(0)
    assert mode & 0x8  # SSL_MODE_NO_AUTO_CHAIN
    assert ctx.get_session_cache_mode() & SSL.SESS_CACHE_SERVER


def test_ffdhe_groups_are_openssls_named_groups() -> None:
    assert set(FFDHE_GROUPS) == {"ffdhe2048", "ffdhe3072", "ffdhe4096", "ffdhe6144", "ffdhe8192"}
    for name in FFDHE_GROUPS:
        text = subprocess.run(
            ["openssl", "pkeyparam", "-noout", "-text"], input=ffdhe_pem(name), capture_output=True, timeout=10
        ).stdout.decode()
        assert f"GROUP: {name}" in text  # OpenSSL recognises the prime as the named RFC 7919 group


def _serve(pki: Pki, settings: Settings) -> tuple[SSL.Context, CertificateIndex]:
    index = CertificateIndex.build([], [], pki.defaults[:1], profile=tls_profile(settings))  # RSA default only
    return base_context(settings, index, make_sni_callback(lambda: index, _NullLog())), index


class _NullLog:
    debug_enabled = False

    def debug(self, message: str) -> None:
        raise AssertionError("debug is disabled")

    def error(self, message: str) -> None:
        pass


def test_intermediate_negotiates_tls12_and_tls13_and_dhe(tmp_path: pathlib.Path, pki: Pki) -> None:
    ctx, _ = _serve(pki, _settings(tmp_path))
    with tls_server(ctx) as server:
        for args, expected in (
            (["-tls1_3"], "TLSv1.3"),
            (["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"], "ECDHE-RSA-AES128-GCM-SHA256"),
            (["-tls1_2", "-cipher", "DHE-RSA-AES256-GCM-SHA384"], "DHE-RSA-AES256-GCM-SHA384"),  # ffdhe2048
        ):
            result = s_client(server.port, "x.test", *args)
            assert result.returncode == 0, result.output
            assert expected in result.output
            assert server.outcome().error is None
        refused = s_client(server.port, "x.test", "-tls1_2", "-cipher", "AES128-SHA")  # not in intermediate
        assert refused.returncode != 0
        assert server.outcome().error is not None


def test_modern_refuses_tls12(tmp_path: pathlib.Path, pki: Pki) -> None:
    ctx, _ = _serve(pki, _settings(tmp_path, ssl_cipher_suite="modern"))
    with tls_server(ctx) as server:
        assert s_client(server.port, "x.test", "-tls1_2").returncode != 0
        assert server.outcome().error is not None
        assert s_client(server.port, "x.test", "-tls1_3").returncode == 0


def test_old_allows_tls11(tmp_path: pathlib.Path, pki: Pki) -> None:
    ctx, _ = _serve(pki, _settings(tmp_path, ssl_cipher_suite="old"))
    with tls_server(ctx) as server:
        result = s_client(server.port, "x.test", "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")
        assert result.returncode == 0, result.output
        assert "TLSv1.1" in result.output
    ctx, _ = _serve(pki, _settings(tmp_path))
    with tls_server(ctx) as server:
        assert s_client(server.port, "x.test", "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0").returncode != 0


@pytest.mark.parametrize(
    ("prefer", "expected"), [("on", "ECDHE-RSA-AES128-GCM-SHA256"), ("off", "ECDHE-RSA-AES256-GCM-SHA384")]
)
def test_custom_server_cipher_preference(tmp_path: pathlib.Path, pki: Pki, prefer: str, expected: str) -> None:
    settings = _settings(
        tmp_path,
        ssl_cipher_suite="custom",
        ssl_ciphers="ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384",
        ssl_prefer_server_ciphers=prefer,
    )
    ctx, _ = _serve(pki, settings)
    with tls_server(ctx) as server:
        client_order = "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256"
        result = s_client(server.port, "x.test", "-tls1_2", "-cipher", client_order)
        assert result.returncode == 0, result.output
        assert f"Cipher is {expected}" in result.output


def test_session_cache_size_zero_turns_the_server_cache_off() -> None:
    """``ssl_session_cache_size = 0`` is nginx's ``ssl_session_cache off``: with tickets off, only full handshakes."""
    assert TlsProfile().session_cache is True
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    apply_profile(ctx, TlsProfile(session_tickets=False, session_cache=False))
    assert ctx.get_session_cache_mode() == SSL.SESS_CACHE_OFF
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    apply_profile(ctx, TlsProfile())
    assert ctx.get_session_cache_mode() == SSL.SESS_CACHE_SERVER
