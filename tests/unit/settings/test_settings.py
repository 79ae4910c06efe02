"""Settings: kong.conf syntax, defaults, KONG_* overrides, aliases and clear errors."""

from __future__ import annotations

import pathlib
import re

import pytest

from gateway.settings import SPECS, ConfigError, Listener, load_settings, parse_conf_text

CONF = pathlib.Path(__file__).parents[3] / "conf" / "gateway.conf"


def test_defaults_are_kongs() -> None:
    s = load_settings(env={})
    assert s.proxy_listen == (Listener("0.0.0.0", 8000), Listener("0.0.0.0", 8443, ssl=True))
    assert s.admin_listen == (Listener("127.0.0.1", 8001),)
    assert s.database == "sqlite"
    assert s.upstream_keepalive_pool_size == 512
    assert s.upstream_keepalive_max_requests == 10000
    assert s.upstream_keepalive_idle_timeout == 60
    assert s.headers == ("server_tokens", "latency_tokens", "X-Kong-Request-Id")
    assert s.proxy_ssl_verify is False and s.proxy_ssl_verify_depth == 1
    assert s.proxy_ssl_trusted_certificate is None
    assert s.http_parser == "httptools"
    assert s.ssl_session_timeout == 86400
    assert s.large_header_buffer_size == 8192 and s.large_header_buffer_count == 4


def test_file_then_environment_then_overrides(tmp_path: pathlib.Path) -> None:
    conf = tmp_path / "g.conf"
    conf.write_text("log_level = debug   # comment\nupstream_keepalive_pool_size = 7\nprefix = /a\n")
    s = load_settings(str(conf), env={"KONG_UPSTREAM_KEEPALIVE_POOL_SIZE": "9"}, overrides={"prefix": "/b"})
    assert s.log_level == "debug"
    assert s.upstream_keepalive_pool_size == 9
    assert s.prefix == "/b"
    assert s.path("logs/error.log") == "/b/logs/error.log"
    assert s.path("/abs/x.log") == "/abs/x.log"


def test_unknown_key_in_file_names_key_and_line(tmp_path: pathlib.Path) -> None:
    conf = tmp_path / "g.conf"
    conf.write_text("log_level = info\nproxy_lissten = 0.0.0.0:1\n")
    with pytest.raises(ConfigError, match=r"g\.conf:2: unknown setting 'proxy_lissten'"):
        load_settings(str(conf), env={})


def test_unknown_env_is_ignored_but_reported() -> None:
    s = load_settings(env={"KONG_PG_SEMAPHORE_TIMEOUT": "60000", "KONG_LOG_LEVEL": "warn", "OTHER": "x"})
    assert s.log_level == "warn"
    assert s.ignored_env == ("KONG_PG_SEMAPHORE_TIMEOUT",)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("log_level", "loud", r"log_level has an invalid value: 'loud' \(accepted: debug, info"),
        ("database", "cassandra", r"database has an invalid value: 'cassandra' \(accepted: sqlite, postgres, off\)"),
        ("http_parser", "llhttp", r"http_parser has an invalid value: 'llhttp' \(accepted: httptools, h11\)"),
        ("upstream_keepalive_pool_size", "-1", r"upstream_keepalive_pool_size must be at least 0"),
        ("upstream_keepalive_pool_size", "many", r"upstream_keepalive_pool_size is not a valid integer"),
        ("proxy_ssl_verify", "maybe", r"proxy_ssl_verify has an invalid value: 'maybe' \(accepted: on, off\)"),
        ("proxy_listen", "0.0.0.0", r"proxy_listen has an invalid entry: '0.0.0.0'"),
        ("proxy_listen", "0.0.0.0:80 sssl", r"proxy_listen has an invalid flag 'sssl'"),
        ("ssl_protocols", "TLSv1.4", r"ssl_protocols has an invalid value: 'TLSv1.4'"),
        ("proxy_ssl_verify_depth", "65", r"proxy_ssl_verify_depth must be at most 64"),
        ("worker_processes", "zero", r"worker_processes has an invalid value: 'zero'"),
    ],
)
def test_bad_values_name_key_and_accepted_values(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env={f"KONG_{key.upper()}": value})


def test_listen_flags_and_ipv6() -> None:
    s = load_settings(env={"KONG_PROXY_LISTEN": "[::1]:9000 ssl reuseport backlog=100, 127.0.0.1:9001"})
    assert s.proxy_listen == (
        Listener("::1", 9000, ssl=True, reuseport=True, backlog=100),
        Listener("127.0.0.1", 9001),
    )
    assert load_settings(env={"KONG_ADMIN_LISTEN": "off"}).admin_listen == ()


def test_kong_injected_aliases() -> None:
    s = load_settings(
        env={
            "KONG_NGINX_PROXY_PROXY_SSL_VERIFY": "on",
            "KONG_NGINX_HTTP_PROXY_SSL_VERIFY_DEPTH": "5",
            "KONG_NGINX_PROXY_PROXY_SSL_TRUSTED_CERTIFICATE": "/ca.pem",
        }
    )
    assert s.proxy_ssl_verify is True
    assert s.proxy_ssl_verify_depth == 5
    assert s.proxy_ssl_trusted_certificate == "/ca.pem"
    assert parse_conf_text("nginx_http_proxy_ssl_verify = on") == {"proxy_ssl_verify": "on"}
    injected = load_settings(
        env={"KONG_NGINX_HTTP_LARGE_CLIENT_HEADER_BUFFERS": "8 16k", "KONG_NGINX_PROXY_KEEPALIVE_TIMEOUT": "5s"}
    )
    assert injected.large_header_buffer_size == 16384 and injected.large_header_buffer_count == 8
    assert injected.keepalive_timeout == 5


def test_header_name_directives_and_their_injected_spellings() -> None:
    defaults = load_settings(env={})
    assert defaults.underscores_in_headers is False and defaults.ignore_invalid_headers is True
    injected = load_settings(
        env={"KONG_NGINX_HTTP_UNDERSCORES_IN_HEADERS": "on", "KONG_NGINX_PROXY_IGNORE_INVALID_HEADERS": "off"}
    )
    assert injected.underscores_in_headers is True and injected.ignore_invalid_headers is False
    assert parse_conf_text("nginx_proxy_underscores_in_headers = on\nnginx_http_ignore_invalid_headers = off") == {
        "underscores_in_headers": "on",
        "ignore_invalid_headers": "off",
    }
    assert load_settings(env={"KONG_UNDERSCORES_IN_HEADERS": "on"}).underscores_in_headers is True
    with pytest.raises(ConfigError, match=r"underscores_in_headers has an invalid value: 'yes please'"):
        load_settings(env={"KONG_NGINX_HTTP_UNDERSCORES_IN_HEADERS": "yes please"})


def test_cross_checks() -> None:
    with pytest.raises(ConfigError, match="client_ssl_cert and client_ssl_cert_key must be set"):
        load_settings(env={"KONG_CLIENT_SSL": "on"})
    with pytest.raises(ConfigError, match="same number of entries"):
        load_settings(env={"KONG_SSL_CERT": "/a.crt, /b.crt", "KONG_SSL_CERT_KEY": "/a.key"})


def test_hash_escape_in_values() -> None:
    assert parse_conf_text("real_ip_header = X-\\#weird  # trailing") == {"real_ip_header": "X-#weird"}


def test_missing_file_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        load_settings(str(tmp_path / "absent.conf"), env={})


def test_reference_conf_documents_every_setting_with_its_default() -> None:
    text = CONF.read_text()
    documented = dict(re.findall(r"^#([a-z_0-9]+) = (.*)$", text, flags=re.M))
    assert set(documented) == set(SPECS)
    for key, spec in SPECS.items():
        assert documented[key] == spec.default, key
    # Uncommenting every line yields a valid configuration equal to the defaults.
    uncommented = "\n".join(f"{k} = {v}" for k, v in documented.items())
    assert parse_conf_text(uncommented) == {k: s.default for k, s in SPECS.items()}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"KONG_STATUS_LISTEN": "127.0.0.1:8100, 127.0.0.1:8101 ssl"},
            r"^status_listen = .* is not supported: an HTTPS Status API listener is not implemented",
        ),
        (
            {"KONG_ADMIN_LISTEN": "127.0.0.1:8001 reuseport backlog=16384, 127.0.0.1:8444 http2 ssl"},
            r"^admin_listen = .* is not supported: an HTTPS Admin API listener is not implemented",
        ),
        ({"KONG_PROXY_LISTEN": "0.0.0.0:8000 proxy_protocol"}, r"^proxy_listen = 0\.0\.0\.0:8000 proxy_protocol: the"),
        ({"KONG_ADMIN_LISTEN": "127.0.0.1:8001 deferred"}, r"^admin_listen = .*: the 'deferred' flag is not supported"),
        ({"KONG_ADMIN_ERROR_LOG": "/var/log/admin.log"}, r"^admin_error_log = /var/log/admin\.log is not supported"),
        ({"KONG_PROXY_ERROR_LOG": "logs/error.log debug"}, r"^proxy_error_log = logs/error\.log debug is not"),
        ({"KONG_PROXY_ACCESS_LOG": "/dev/stdout custom"}, r"^proxy_access_log = /dev/stdout custom is not supported"),
        ({"KONG_ADMIN_ACCESS_LOG": "/dev/stdout combined"}, r"^admin_access_log = /dev/stdout combined is not"),
        ({"KONG_REAL_IP_HEADER": "proxy_protocol"}, r"^real_ip_header = proxy_protocol is not supported"),
        ({"KONG_NGINX_HTTP_CLIENT_HEADER_BUFFER_SIZE": "16k"}, r"^client_header_buffer_size = 16k is not supported"),
        ({"KONG_SSL_SESSION_CACHE_SIZE": "1m"}, r"^ssl_session_cache_size = 1m is not supported"),
        ({"KONG_HEADERS": "server_tokens, Powered-By"}, r"^headers: invalid entry 'Powered-By'$"),
        (
            {"KONG_HEADERS_UPSTREAM": "X-Kong-Proxy-Latency"},
            r"^headers_upstream: invalid entry 'X-Kong-Proxy-Latency'$",
        ),
        (
            {"KONG_PLUGINS": "bundled,key-auth,cors"},
            r"^plugins: key-auth plugin is enabled but not installed; this gateway runs only acl, mtls-auth, "
            r"prometheus, tls-metadata-headers: remove 'key-auth', 'cors' from the 'plugins' setting$",
        ),
    ],
)
def test_values_kong_honours_and_this_gateway_cannot_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env=env)


@pytest.mark.parametrize(
    "env",
    [
        {"KONG_STATUS_LISTEN": "off"},
        {"KONG_STATUS_LISTEN": "127.0.0.1:8007 reuseport backlog=16384"},  # Kong 3.6+'s default, written out
        {"KONG_STATUS_LISTEN": "0.0.0.0:8100, [::1]:8100 http2"},
        {"KONG_ADMIN_ERROR_LOG": "/dev/stderr", "KONG_PROXY_ERROR_LOG": "/dev/stderr"},  # Kong's docker example
        {"KONG_PROXY_ERROR_LOG": "/dev/stderr"},  # admin_error_log left at its default
        {"KONG_PROXY_ACCESS_LOG": "/dev/stdout", "KONG_ADMIN_ACCESS_LOG": "off"},
        {"KONG_PROXY_LISTEN": "0.0.0.0:8000 reuseport backlog=16384, 0.0.0.0:8443 http2 ssl reuseport backlog=16384"},
        {"KONG_ADMIN_LISTEN": "127.0.0.1:8001 reuseport backlog=16384 bind"},
        {"KONG_NGINX_HTTP_CLIENT_HEADER_BUFFER_SIZE": "8k"},
        {"KONG_NGINX_HTTP_CLIENT_HEADER_BUFFER_SIZE": "16k", "KONG_NGINX_HTTP_LARGE_CLIENT_HEADER_BUFFERS": "4 16k"},
        {"KONG_SSL_SESSION_CACHE_SIZE": "0"},
        {"KONG_SSL_SESSION_CACHE_SIZE": "10240k"},
        {"KONG_HEADERS": "off"},
        {"KONG_HEADERS": "Server, via, X-Kong-Upstream-Status, x-kong-admin-latency", "KONG_HEADERS_UPSTREAM": "off"},
    ],
)
def test_kongs_defaults_and_honoured_values_are_accepted(env: dict[str, str]) -> None:
    load_settings(env=env)


def test_plugins_setting_resolves_like_kongs_loaded_plugins() -> None:
    assert load_settings(env={}).plugins == ("bundled",)
    assert load_settings(env={}).enabled_plugins == ("acl", "mtls-auth", "prometheus", "tls-metadata-headers")
    assert load_settings(env={"KONG_PLUGINS": "tls-metadata-headers"}).enabled_plugins == ("tls-metadata-headers",)
    assert load_settings(env={"KONG_PLUGINS": "bundled, mtls-auth"}).enabled_plugins == (
        "acl",
        "mtls-auth",
        "prometheus",
        "tls-metadata-headers",
    )
    assert load_settings(env={"KONG_PLUGINS": "off"}).enabled_plugins == ()
    assert load_settings(env={"KONG_PLUGINS": "off, mtls-auth"}).enabled_plugins == ()  # Kong: off first wins
