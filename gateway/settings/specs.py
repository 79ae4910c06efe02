"""Every setting's default (as kong.conf writes it) and parser, declared once (``SPECS``), and Kong's injected nginx
spellings that mean one of them (``ALIASES``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.settings.listeners import parse_listen, parse_stream_listen
from gateway.settings.parsers import (
    HEADER_TOKENS,
    UPSTREAM_HEADER_TOKENS,
    enum_parser,
    int_parser,
    parse_bool,
    parse_duration,
    parse_list,
    parse_optional,
    parse_optional_int,
    parse_plugins,
    parse_size,
    parse_str,
    token_list_parser,
)

__all__ = ["ALIASES", "SPECS", "Spec"]


@dataclass(frozen=True, slots=True)
class Spec:
    """One setting: its default (as written in kong.conf) and how to parse it."""

    default: str
    parse: Callable[[str, str], Any]
    doc: str


_BOOL = parse_bool

SPECS: dict[str, Spec] = {
    # general
    "prefix": Spec("/usr/local/kong/", parse_str, "working directory: database, logs, generated certificates"),
    "log_level": Spec(
        "notice",
        enum_parser("debug", "info", "notice", "warn", "error", "crit", "alert", "emerg"),
        "error-log verbosity",
    ),
    "proxy_access_log": Spec("logs/access.log", parse_str, "proxy access log (relative to prefix), or off"),
    "proxy_error_log": Spec("logs/error.log", parse_str, "proxy error log (relative to prefix)"),
    "admin_access_log": Spec("logs/admin_access.log", parse_str, "Admin API access log, or off"),
    "admin_error_log": Spec("logs/error.log", parse_str, "Admin API error log"),
    "proxy_listen": Spec("0.0.0.0:8000, 0.0.0.0:8443 ssl", parse_listen, "proxy listeners"),
    "admin_listen": Spec("127.0.0.1:8001", parse_listen, "Admin API listeners"),
    "status_listen": Spec("off", parse_listen, "status API listener"),
    "stream_listen": Spec("off", parse_stream_listen, "stream (TCP/TLS) proxy listeners"),
    "headers": Spec(
        "server_tokens, latency_tokens, X-Kong-Request-Id",
        token_list_parser(HEADER_TOKENS),
        "headers Kong injects downstream",
    ),
    "headers_upstream": Spec(
        "X-Kong-Request-Id", token_list_parser(UPSTREAM_HEADER_TOKENS), "headers Kong injects upstream"
    ),
    "trusted_ips": Spec("NONE", parse_list, "proxies whose X-Forwarded-* / real-IP headers are trusted"),
    "real_ip_header": Spec("X-Real-IP", parse_str, "header carrying the client address from trusted_ips"),
    "real_ip_recursive": Spec("off", _BOOL, "nginx real_ip_recursive"),
    "error_default_type": Spec(
        "text/plain",
        enum_parser("application/json", "text/html", "text/plain", "application/xml"),
        "body format of generated errors when Accept/Content-Type say nothing",
    ),
    "plugins": Spec(
        "bundled",
        parse_plugins,
        "plugins a plugin entity may name: bundled (every plugin this gateway runs), off, or names",
    ),
    # datastore
    "database": Spec(
        "sqlite", enum_parser("sqlite", "off"), "sqlite (embedded file; Kong defaults to postgres) or off (DB-less)"
    ),
    "sqlite_database": Spec("gateway.db", parse_str, "SQLite file (relative to prefix); not a Kong key"),
    "declarative_config": Spec("NONE", parse_optional, "kong.yml loaded at start in DB-less mode"),
    # HTTP
    "http_parser": Spec("httptools", enum_parser("httptools", "h11"), "downstream HTTP/1.1 parser"),
    "client_max_body_size": Spec("0", parse_size, "largest request body; 0 = unlimited"),
    "client_header_buffer_size": Spec("1k", parse_size, "nginx client_header_buffer_size"),
    "large_client_header_buffers": Spec(
        "4 8k", parse_str, "nginx large_client_header_buffers: count and size (request line / header line)"
    ),
    "keepalive_timeout": Spec("75s", parse_duration, "downstream keepalive timeout (nginx default 75s)"),
    "client_header_timeout": Spec("60s", parse_duration, "time to receive a request head"),
    "client_body_timeout": Spec("60s", parse_duration, "time between two body reads"),
    "underscores_in_headers": Spec(
        "off", _BOOL, "nginx underscores_in_headers: accept request header names with '_' (else they are invalid)"
    ),
    "ignore_invalid_headers": Spec(
        "on",
        _BOOL,
        "nginx ignore_invalid_headers: drop request headers whose name has a character other than letters, "
        "digits, '-' (and '_' per underscores_in_headers), logged at info; off forwards them",
    ),
    "upstream_keepalive_pool_size": Spec("512", int_parser(0), "idle upstream connections per pool; 0 = off"),
    "upstream_keepalive_max_requests": Spec("10000", int_parser(0), "requests per upstream connection; 0 = inf"),
    "upstream_keepalive_idle_timeout": Spec("60", int_parser(0), "seconds an idle upstream connection is kept"),
    # downstream TLS
    "ssl_cipher_suite": Spec(
        "intermediate", enum_parser("modern", "intermediate", "old", "fips", "custom"), "TLS cipher preset"
    ),
    "ssl_ciphers": Spec("NONE", parse_optional, "OpenSSL cipher list when ssl_cipher_suite = custom"),
    "ssl_protocols": Spec("TLSv1.2 TLSv1.3", parse_str, "enabled TLS versions"),
    "ssl_prefer_server_ciphers": Spec("on", _BOOL, "server cipher preference"),
    "ssl_dhparam": Spec("NONE", parse_optional, "DH parameters"),
    "ssl_session_tickets": Spec("on", _BOOL, "TLS session tickets"),
    "ssl_session_timeout": Spec("1d", parse_duration, "TLS session lifetime"),
    "ssl_session_cache_size": Spec("10m", parse_size, "TLS session cache size"),
    "ssl_cert": Spec("NONE", parse_list, "default certificate(s): paths, PEM or base64, comma separated"),
    "ssl_cert_key": Spec("NONE", parse_list, "keys for ssl_cert, same order"),
    # upstream TLS
    "client_ssl": Spec("off", _BOOL, "present client_ssl_cert to upstreams"),
    "client_ssl_cert": Spec("NONE", parse_optional, "global upstream client certificate (path or PEM)"),
    "client_ssl_cert_key": Spec("NONE", parse_optional, "key for client_ssl_cert"),
    "proxy_ssl_verify": Spec("off", _BOOL, "verify upstream certificates when a service says nothing"),
    "proxy_ssl_trusted_certificate": Spec("NONE", parse_optional, "upstream trust store: PEM path or system"),
    "proxy_ssl_verify_depth": Spec("1", int_parser(0, 64), "upstream verify depth when a service says nothing"),
    "proxy_ssl_session_reuse": Spec("on", _BOOL, "resume upstream TLS sessions (cache keyed like the pool)"),
    "lua_ssl_trusted_certificate": Spec("system", parse_list, "trust store for health checks"),
    "lua_ssl_verify_depth": Spec("1", int_parser(0, 64), "verify depth for health checks"),
    "debug_tls_errors": Spec("off", _BOOL, "add X-Gateway-TLS-Error to 502s caused by TLS (not a Kong key)"),
    "allow_debug_header": Spec("off", _BOOL, "Kong-Debug: 1 adds Kong-Route-*/Kong-Service-* and the TLS trace"),
    # DNS (upstream targets and service hosts that are names)
    "dns_resolver": Spec("NONE", parse_list, "name servers (ip or ip:port, comma separated); NONE = resolv.conf"),
    "dns_hostsfile": Spec("/etc/hosts", parse_str, "hosts file consulted before DNS"),
    "dns_valid_ttl": Spec("NONE", parse_optional_int, "TTL (seconds) forced on every DNS answer; NONE = the record's"),
    "dns_stale_ttl": Spec("3600", int_parser(0), "seconds an expired record still serves while refreshing fails"),
    "dns_not_found_ttl": Spec("30", int_parser(0), "seconds a name-not-found answer is cached"),
    "dns_error_ttl": Spec("1", int_parser(0), "seconds a DNS error is cached"),
    # workers
    "worker_processes": Spec("auto", parse_str, "processes serving the proxy, or auto (one per core)"),
}

# Kong's injected nginx spellings that mean one of our keys.
ALIASES: dict[str, str] = {
    "nginx_proxy_proxy_ssl_verify": "proxy_ssl_verify",
    "nginx_http_proxy_ssl_verify": "proxy_ssl_verify",
    "nginx_proxy_proxy_ssl_trusted_certificate": "proxy_ssl_trusted_certificate",
    "nginx_http_proxy_ssl_trusted_certificate": "proxy_ssl_trusted_certificate",
    "nginx_proxy_proxy_ssl_verify_depth": "proxy_ssl_verify_depth",
    "nginx_http_proxy_ssl_verify_depth": "proxy_ssl_verify_depth",
    "nginx_proxy_proxy_ssl_session_reuse": "proxy_ssl_session_reuse",
    "nginx_http_proxy_ssl_session_reuse": "proxy_ssl_session_reuse",
    "nginx_worker_processes": "worker_processes",
    "nginx_main_worker_processes": "worker_processes",
}
# nginx directives that are first-class keys here and that Kong users inject as ``nginx_http_<directive>``
# (or ``nginx_proxy_<directive>`` for the proxy server block).
for _directive in (
    "large_client_header_buffers",
    "client_header_buffer_size",
    "client_header_timeout",
    "client_body_timeout",
    "keepalive_timeout",
    "client_max_body_size",
    "underscores_in_headers",
    "ignore_invalid_headers",
):
    ALIASES[f"nginx_http_{_directive}"] = _directive
    ALIASES[f"nginx_proxy_{_directive}"] = _directive
