"""kong.conf-style settings: one file plus ``KONG_*`` environment overrides -> one frozen ``Settings``.

Rules, in the order they apply (Kong's own order, ``kong/conf_loader``):

1. Every key has a default, declared once in ``SPECS`` below (the same defaults as ``kong.conf.default``
   unless the comment says otherwise); ``conf/gateway.conf`` documents each one.
2. The configuration file (``-c``) overrides defaults. Syntax: ``key = value``, ``#`` starts a comment
   unless escaped as ``\\#``, blank lines ignored. An unknown key is an error that names the key.
3. ``KONG_<KEY>`` environment variables override the file (so existing docker-compose files work).
   Unknown ``KONG_*`` variables are ignored: containers commonly carry settings of Kong features we do
   not have (``KONG_PG_HOST``...), and failing on them would break drop-in use. They are reported by
   ``Settings.ignored_env`` so the CLI can log them.
4. Values are parsed and validated per key; a bad value is an error naming the key and what is accepted.
5. No value is accepted and then ignored: a value Kong would honour and this gateway cannot (the PROXY
   protocol, an HTTPS Admin or Status API listener, a log format...) is refused with the reason
   (``UNSUPPORTED``), while Kong's own defaults stay valid so that an unmodified kong.conf starts. A stand-in
   for Kong that quietly ignores a setting lets a test suite pass here and fail on Kong.

Aliases: Kong's injected nginx spellings (``nginx_proxy_proxy_ssl_verify`` ...) map onto our first-class keys.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SPECS", "ConfigError", "Listener", "Settings", "load_settings", "parse_conf_text"]


class ConfigError(ValueError):
    """A setting could not be read or validated; the message names the key."""


@dataclass(frozen=True, slots=True)
class Listener:
    """One ``proxy_listen`` / ``admin_listen`` entry, e.g. ``0.0.0.0:8443 ssl reuseport backlog=16384``."""

    host: str
    port: int
    ssl: bool = False
    http2: bool = False
    reuseport: bool = False
    backlog: int = 511
    proxy_protocol: bool = False

    @property
    def scheme(self) -> str:
        return "https" if self.ssl else "http"


# --------------------------------------------------------------------------------------------- parsers
def _parse_bool(key: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("on", "true", "yes", "1"):
        return True
    if value in ("off", "false", "no", "0"):
        return False
    raise ConfigError(f"{key} has an invalid value: '{raw}' (accepted: on, off)")


def _int_parser(minimum: int | None = None, maximum: int | None = None) -> Callable[[str, str], int]:
    def parse(key: str, raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ConfigError(f"{key} is not a valid integer: '{raw}'") from None
        if minimum is not None and value < minimum:
            raise ConfigError(f"{key} must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise ConfigError(f"{key} must be at most {maximum}, got {value}")
        return value

    return parse


def _enum_parser(*choices: str) -> Callable[[str, str], str]:
    def parse(key: str, raw: str) -> str:
        value = raw.strip()
        if value not in choices:
            raise ConfigError(f"{key} has an invalid value: '{value}' (accepted: {', '.join(choices)})")
        return value

    return parse


_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024 * 1024, "g": 1024 * 1024 * 1024}


def _parse_size(key: str, raw: str) -> int:
    """nginx size syntax: ``8k``, ``10m``, ``0`` (bytes)."""
    match = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)\s*", raw)
    if not match:
        raise ConfigError(f"{key} has an invalid size: '{raw}' (examples: 0, 8k, 10m)")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]


_TIME_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _parse_duration(key: str, raw: str) -> int:
    """nginx time syntax in seconds: ``60``, ``60s``, ``10m``, ``1d``."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", raw)
    if not match:
        raise ConfigError(f"{key} has an invalid duration: '{raw}' (examples: 60, 10m, 1d)")
    return int(match.group(1)) * _TIME_UNITS[match.group(2)]


def _parse_list(key: str, raw: str) -> tuple[str, ...]:
    value = raw.strip()
    if value in ("", "NONE", "off"):
        return ()
    return tuple(part.strip() for part in value.split(",") if part.strip())


_HEADER_TOKENS = frozenset(
    {
        "server_tokens",
        "latency_tokens",
        "via",
        "server",
        "x-kong-proxy-latency",
        "x-kong-response-latency",
        "x-kong-admin-latency",
        "x-kong-upstream-latency",
        "x-kong-upstream-status",
        "x-kong-request-id",
    }
)
"""Kong's ``HEADER_KEY_TO_NAME`` (``kong/conf_loader/constants.lua``): what ``headers`` may list."""
_UPSTREAM_HEADER_TOKENS = frozenset({"x-kong-request-id"})


def _token_list_parser(tokens: frozenset[str]) -> Callable[[str, str], tuple[str, ...]]:
    """A list whose entries must be ``off`` or one of ``tokens`` (any case), with Kong's message otherwise."""

    def parse(key: str, raw: str) -> tuple[str, ...]:
        values = _parse_list(key, raw)
        for token in values:
            if token != "off" and token.lower() not in tokens:
                raise ConfigError(f"{key}: invalid entry '{token}'")
        return values

    return parse


def _parse_plugins(key: str, raw: str) -> tuple[str, ...]:
    """Kong's ``plugins``: ``bundled`` (here: every plugin this gateway runs), ``off``, or names, comma separated.

    A name this gateway does not run is refused, as Kong refuses one it cannot load (``<name> plugin is enabled but
    not installed``): enabling it could only end in a plugin that is configured and never runs.
    """
    from gateway.entities.plugin_configs import registered_plugins, runs_note

    values = tuple(part.strip() for part in raw.split(",") if part.strip())
    available = set(registered_plugins())
    missing = [name for name in values if name not in ("bundled", "off") and name not in available]
    if missing:
        first = missing[0]
        raise ConfigError(
            f"{key}: {first} plugin is enabled but not installed; {runs_note()}: remove "
            f"{', '.join(repr(name) for name in missing)} from the '{key}' setting"
        )
    return values


def _parse_optional(key: str, raw: str) -> str | None:
    value = raw.strip()
    return None if value in ("", "NONE") else value


def _parse_optional_int(key: str, raw: str) -> int | None:
    if raw.strip().upper() in ("", "NONE"):
        return None
    return _int_parser(0)(key, raw)


def _parse_str(key: str, raw: str) -> str:
    return raw.strip()


_LISTEN_FLAGS = {"ssl", "http2", "reuseport", "bind"}
"""Flags honoured (``http2``: the listener serves HTTP/1.1, see docs/compatibility.md; ``bind``: every address is
bound on its own socket anyway, which is what nginx's ``bind`` asks for)."""
_UNSUPPORTED_LISTEN_FLAGS = {
    "proxy_protocol": "this gateway does not read the PROXY protocol header",
    "deferred": "TCP_DEFER_ACCEPT is not applied to this gateway's listeners",
}


def _parse_listen(key: str, raw: str) -> tuple[Listener, ...]:
    """``off`` or a comma list of ``host:port [flags...]``; ``[::1]:8000`` for IPv6."""
    if raw.strip() in ("off", "", "NONE"):
        return ()
    listeners = []
    for entry in raw.split(","):
        words = entry.split()
        if not words:
            continue
        address, flags = words[0], words[1:]
        match = re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[^:\s]+):(\d+)", address)
        if not match:
            raise ConfigError(f"{key} has an invalid entry: '{entry.strip()}' (expected host:port [ssl] ...)")
        host = match.group(1).strip("[]")
        port = int(match.group(2))
        if not 0 <= port <= 65535:
            raise ConfigError(f"{key} has an invalid port in '{entry.strip()}'")
        options: dict[str, Any] = {}
        for flag in flags:
            name, _, value = flag.partition("=")
            if name in _UNSUPPORTED_LISTEN_FLAGS and not value:
                raise ConfigError(
                    f"{key} = {entry.strip()}: the '{name}' flag is not supported ({_UNSUPPORTED_LISTEN_FLAGS[name]})"
                )
            if name == "backlog" and value.isdigit():
                options["backlog"] = int(value)
            elif name in _LISTEN_FLAGS and not value:
                if name in ("ssl", "http2", "reuseport"):
                    options[name] = True
            else:
                raise ConfigError(
                    f"{key} has an invalid flag '{flag}' in '{entry.strip()}' "
                    "(accepted: ssl, http2, reuseport, bind, backlog=N)"
                )
        listeners.append(Listener(host=host, port=port, **options))
    return tuple(listeners)


_STREAM_REFUSED_FLAGS = {
    "udp": "the stream subsystem here proxies TCP only (no UDP listener, no udp routes)",
}


def _parse_stream_listen(key: str, raw: str) -> tuple[Listener, ...]:
    """``stream_listen``: Kong's stream flags (``ssl``, ``proxy_protocol``, ``reuseport``, ``backlog=N``, ``bind``);
    ``udp`` is refused (no UDP proxy) and ``http2`` is not a stream flag (Kong refuses it too)."""
    for entry in raw.split(","):
        for flag in entry.split()[1:]:
            if flag in _STREAM_REFUSED_FLAGS:
                raise ConfigError(
                    f"{key} = {entry.strip()}: the '{flag}' flag is not supported ({_STREAM_REFUSED_FLAGS[flag]})"
                )
            if flag == "http2":
                raise ConfigError(
                    f"{key} has an invalid flag '{flag}' in '{entry.strip()}' "
                    "(accepted: ssl, reuseport, bind, backlog=N)"
                )
    return _parse_listen(key, raw)


@dataclass(frozen=True, slots=True)
class Spec:
    """One setting: its default (as written in kong.conf) and how to parse it."""

    default: str
    parse: Callable[[str, str], Any]
    doc: str


_BOOL = _parse_bool
_INT = _int_parser()

SPECS: dict[str, Spec] = {
    # general
    "prefix": Spec("/usr/local/kong/", _parse_str, "working directory: database, logs, generated certificates"),
    "log_level": Spec(
        "notice",
        _enum_parser("debug", "info", "notice", "warn", "error", "crit", "alert", "emerg"),
        "error-log verbosity",
    ),
    "proxy_access_log": Spec("logs/access.log", _parse_str, "proxy access log (relative to prefix), or off"),
    "proxy_error_log": Spec("logs/error.log", _parse_str, "proxy error log (relative to prefix)"),
    "admin_access_log": Spec("logs/admin_access.log", _parse_str, "Admin API access log, or off"),
    "admin_error_log": Spec("logs/error.log", _parse_str, "Admin API error log"),
    "proxy_listen": Spec("0.0.0.0:8000, 0.0.0.0:8443 ssl", _parse_listen, "proxy listeners"),
    "admin_listen": Spec("127.0.0.1:8001", _parse_listen, "Admin API listeners"),
    "status_listen": Spec("off", _parse_listen, "status API listener"),
    "stream_listen": Spec("off", _parse_stream_listen, "stream (TCP/TLS) proxy listeners"),
    "headers": Spec(
        "server_tokens, latency_tokens, X-Kong-Request-Id",
        _token_list_parser(_HEADER_TOKENS),
        "headers Kong injects downstream",
    ),
    "headers_upstream": Spec(
        "X-Kong-Request-Id", _token_list_parser(_UPSTREAM_HEADER_TOKENS), "headers Kong injects upstream"
    ),
    "trusted_ips": Spec("NONE", _parse_list, "proxies whose X-Forwarded-* / real-IP headers are trusted"),
    "real_ip_header": Spec("X-Real-IP", _parse_str, "header carrying the client address from trusted_ips"),
    "real_ip_recursive": Spec("off", _BOOL, "nginx real_ip_recursive"),
    "error_default_type": Spec(
        "text/plain",
        _enum_parser("application/json", "text/html", "text/plain", "application/xml"),
        "body format of generated errors when Accept/Content-Type say nothing",
    ),
    "plugins": Spec(
        "bundled",
        _parse_plugins,
        "plugins a plugin entity may name: bundled (every plugin this gateway runs), off, or names",
    ),
    # datastore
    "database": Spec(
        "sqlite", _enum_parser("sqlite", "off"), "sqlite (embedded file; Kong defaults to postgres) or off (DB-less)"
    ),
    "sqlite_database": Spec("gateway.db", _parse_str, "SQLite file (relative to prefix); not a Kong key"),
    "declarative_config": Spec("NONE", _parse_optional, "kong.yml loaded at start in DB-less mode"),
    # HTTP
    "http_parser": Spec("httptools", _enum_parser("httptools", "h11"), "downstream HTTP/1.1 parser"),
    "client_max_body_size": Spec("0", _parse_size, "largest request body; 0 = unlimited"),
    "client_header_buffer_size": Spec("1k", _parse_size, "nginx client_header_buffer_size"),
    "large_client_header_buffers": Spec(
        "4 8k", _parse_str, "nginx large_client_header_buffers: count and size (request line / header line)"
    ),
    "keepalive_timeout": Spec("75s", _parse_duration, "downstream keepalive timeout (nginx default 75s)"),
    "client_header_timeout": Spec("60s", _parse_duration, "time to receive a request head"),
    "client_body_timeout": Spec("60s", _parse_duration, "time between two body reads"),
    "underscores_in_headers": Spec(
        "off", _BOOL, "nginx underscores_in_headers: accept request header names with '_' (else they are invalid)"
    ),
    "ignore_invalid_headers": Spec(
        "on",
        _BOOL,
        "nginx ignore_invalid_headers: drop request headers whose name has a character other than letters, "
        "digits, '-' (and '_' per underscores_in_headers), logged at info; off forwards them",
    ),
    "upstream_keepalive_pool_size": Spec("512", _int_parser(0), "idle upstream connections per pool; 0 = off"),
    "upstream_keepalive_max_requests": Spec("10000", _int_parser(0), "requests per upstream connection; 0 = inf"),
    "upstream_keepalive_idle_timeout": Spec("60", _int_parser(0), "seconds an idle upstream connection is kept"),
    # downstream TLS
    "ssl_cipher_suite": Spec(
        "intermediate", _enum_parser("modern", "intermediate", "old", "fips", "custom"), "TLS cipher preset"
    ),
    "ssl_ciphers": Spec("NONE", _parse_optional, "OpenSSL cipher list when ssl_cipher_suite = custom"),
    "ssl_protocols": Spec("TLSv1.2 TLSv1.3", _parse_str, "enabled TLS versions"),
    "ssl_prefer_server_ciphers": Spec("on", _BOOL, "server cipher preference"),
    "ssl_dhparam": Spec("NONE", _parse_optional, "DH parameters"),
    "ssl_session_tickets": Spec("on", _BOOL, "TLS session tickets"),
    "ssl_session_timeout": Spec("1d", _parse_duration, "TLS session lifetime"),
    "ssl_session_cache_size": Spec("10m", _parse_size, "TLS session cache size"),
    "ssl_cert": Spec("NONE", _parse_list, "default certificate(s): paths, PEM or base64, comma separated"),
    "ssl_cert_key": Spec("NONE", _parse_list, "keys for ssl_cert, same order"),
    # upstream TLS
    "client_ssl": Spec("off", _BOOL, "present client_ssl_cert to upstreams"),
    "client_ssl_cert": Spec("NONE", _parse_optional, "global upstream client certificate (path or PEM)"),
    "client_ssl_cert_key": Spec("NONE", _parse_optional, "key for client_ssl_cert"),
    "proxy_ssl_verify": Spec("off", _BOOL, "verify upstream certificates when a service says nothing"),
    "proxy_ssl_trusted_certificate": Spec("NONE", _parse_optional, "upstream trust store: PEM path or system"),
    "proxy_ssl_verify_depth": Spec("1", _int_parser(0, 64), "upstream verify depth when a service says nothing"),
    "proxy_ssl_session_reuse": Spec("on", _BOOL, "resume upstream TLS sessions (cache keyed like the pool)"),
    "lua_ssl_trusted_certificate": Spec("system", _parse_list, "trust store for health checks"),
    "lua_ssl_verify_depth": Spec("1", _int_parser(0, 64), "verify depth for health checks"),
    "debug_tls_errors": Spec("off", _BOOL, "add X-Gateway-TLS-Error to 502s caused by TLS (not a Kong key)"),
    # DNS (upstream targets and service hosts that are names)
    "dns_resolver": Spec("NONE", _parse_list, "name servers (ip or ip:port, comma separated); NONE = resolv.conf"),
    "dns_hostsfile": Spec("/etc/hosts", _parse_str, "hosts file consulted before DNS"),
    "dns_valid_ttl": Spec("NONE", _parse_optional_int, "TTL (seconds) forced on every DNS answer; NONE = the record's"),
    "dns_stale_ttl": Spec("3600", _int_parser(0), "seconds an expired record still serves while refreshing fails"),
    "dns_not_found_ttl": Spec("30", _int_parser(0), "seconds a name-not-found answer is cached"),
    "dns_error_ttl": Spec("1", _int_parser(0), "seconds a DNS error is cached"),
    # workers
    "worker_processes": Spec("auto", _parse_str, "processes serving the proxy, or auto (one per core)"),
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


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting, parsed. Attribute names are the kong.conf keys."""

    prefix: str
    log_level: str
    proxy_access_log: str
    proxy_error_log: str
    admin_access_log: str
    admin_error_log: str
    proxy_listen: tuple[Listener, ...]
    admin_listen: tuple[Listener, ...]
    status_listen: tuple[Listener, ...]
    stream_listen: tuple[Listener, ...]
    headers: tuple[str, ...]
    headers_upstream: tuple[str, ...]
    trusted_ips: tuple[str, ...]
    real_ip_header: str
    real_ip_recursive: bool
    error_default_type: str
    plugins: tuple[str, ...]
    database: str
    sqlite_database: str
    declarative_config: str | None
    http_parser: str
    client_max_body_size: int
    client_header_buffer_size: int
    large_client_header_buffers: str
    keepalive_timeout: int
    client_header_timeout: int
    client_body_timeout: int
    underscores_in_headers: bool
    ignore_invalid_headers: bool
    upstream_keepalive_pool_size: int
    upstream_keepalive_max_requests: int
    upstream_keepalive_idle_timeout: int
    ssl_cipher_suite: str
    ssl_ciphers: str | None
    ssl_protocols: str
    ssl_prefer_server_ciphers: bool
    ssl_dhparam: str | None
    ssl_session_tickets: bool
    ssl_session_timeout: int
    ssl_session_cache_size: int
    ssl_cert: tuple[str, ...]
    ssl_cert_key: tuple[str, ...]
    client_ssl: bool
    client_ssl_cert: str | None
    client_ssl_cert_key: str | None
    proxy_ssl_verify: bool
    proxy_ssl_trusted_certificate: str | None
    proxy_ssl_verify_depth: int
    proxy_ssl_session_reuse: bool
    lua_ssl_trusted_certificate: tuple[str, ...]
    lua_ssl_verify_depth: int
    debug_tls_errors: bool
    dns_resolver: tuple[str, ...]
    dns_hostsfile: str
    dns_valid_ttl: int | None
    dns_stale_ttl: int
    dns_not_found_ttl: int
    dns_error_ttl: int
    worker_processes: str
    # bookkeeping, not settings
    source: str | None = None
    ignored_env: tuple[str, ...] = field(default=())

    def path(self, relative: str) -> str:
        """Resolve a prefix-relative path (logs, database) the way Kong does."""
        if os.path.isabs(relative):
            return relative
        return os.path.join(self.prefix, relative)

    @property
    def large_header_buffer_size(self) -> int:
        """Size of one large header buffer: the longest request line or header line accepted."""
        parts = self.large_client_header_buffers.split()
        return _parse_size("large_client_header_buffers", parts[-1]) if parts else 8192

    @property
    def large_header_buffer_count(self) -> int:
        parts = self.large_client_header_buffers.split()
        return int(parts[0]) if len(parts) == 2 and parts[0].isdigit() else 4

    @property
    def enabled_plugins(self) -> tuple[str, ...]:
        """``plugins`` resolved as Kong's ``loaded_plugins``: ``bundled`` expanded, ``off`` dropped, sorted."""
        from gateway.entities.plugin_configs import registered_plugins

        if not self.plugins or self.plugins[0] == "off":
            return ()
        names: set[str] = set()
        for name in self.plugins:
            if name == "bundled":
                names.update(registered_plugins())
            elif name != "off":
                names.add(name)
        return tuple(sorted(names))

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


_SETTING_FIELDS = {f.name for f in dataclasses.fields(Settings)} - {"source", "ignored_env"}
assert set(SPECS) == _SETTING_FIELDS, sorted(_SETTING_FIELDS ^ set(SPECS))


def parse_conf_text(text: str, source: str = "<conf>") -> dict[str, str]:
    """Parse kong.conf syntax into raw strings; unknown keys raise ``ConfigError`` naming the key and line."""
    values: dict[str, str] = {}
    for lineno, raw_line in enumerate(text.splitlines(), start=1):
        line = re.sub(r"(?<!\\)#.*", "", raw_line).replace("\\#", "#").strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            raise ConfigError(f"{source}:{lineno}: expected 'key = value', got '{raw_line.strip()}'")
        key = ALIASES.get(key, key)
        if key not in SPECS:
            raise ConfigError(f"{source}:{lineno}: unknown setting '{key}'")
        values[key] = value.strip()
    return values


def load_settings(
    conf_path: str | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> Settings:
    """Defaults <- file <- ``KONG_*`` environment <- explicit overrides (the CLI's ``-p``)."""
    env = os.environ if env is None else env
    raw = {key: spec.default for key, spec in SPECS.items()}
    if conf_path is not None:
        try:
            with open(conf_path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise ConfigError(f"cannot read configuration file {conf_path}: {exc.strerror}") from None
        raw.update(parse_conf_text(text, conf_path))
    ignored = []
    for name, value in env.items():
        if not name.startswith("KONG_"):
            continue
        key = name[5:].lower()
        key = ALIASES.get(key, key)
        if key in SPECS:
            raw[key] = value
        else:
            ignored.append(name)
    for key, value in (overrides or {}).items():
        raw[ALIASES.get(key, key)] = value
    parsed = {key: SPECS[key].parse(key, value) for key, value in raw.items()}
    settings = Settings(**parsed, source=conf_path, ignored_env=tuple(sorted(ignored)))
    _cross_check(settings)
    _refuse_unsupported(settings, raw)
    return settings


def _cross_check(settings: Settings) -> None:
    if len(settings.ssl_cert) != len(settings.ssl_cert_key):
        raise ConfigError("ssl_cert and ssl_cert_key must have the same number of entries")
    if settings.client_ssl and not (settings.client_ssl_cert and settings.client_ssl_cert_key):
        raise ConfigError("client_ssl_cert and client_ssl_cert_key must be set when client_ssl = on")
    if settings.ssl_cipher_suite == "custom" and not settings.ssl_ciphers:
        raise ConfigError("ssl_ciphers must be set when ssl_cipher_suite = custom")
    protocols = settings.ssl_protocols.split()
    for proto in protocols:
        if proto not in ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"):
            raise ConfigError(
                f"ssl_protocols has an invalid value: '{proto}' (accepted: TLSv1, TLSv1.1, TLSv1.2, TLSv1.3)"
            )
    lch = settings.large_client_header_buffers.split()
    if len(lch) != 2 or not lch[0].isdigit():
        raise ConfigError("large_client_header_buffers must be 'count size', e.g. '4 8k'")
    _parse_size("large_client_header_buffers", lch[1])
    wp = settings.worker_processes
    if wp != "auto" and not (wp.isdigit() and int(wp) >= 1):
        raise ConfigError(f"worker_processes has an invalid value: '{wp}' (accepted: auto or a number >= 1)")


# --------------------------------------------------------------------------------------------- refused values
@dataclass(frozen=True, slots=True)
class Unsupported:
    """A value Kong accepts (and acts on) that this gateway cannot honour: refused at load, with the reason."""

    key: str
    refused: Callable[[Settings], bool]
    reason: str


def _one_word(value: str) -> bool:
    return len(value.split()) <= 1


_KB = 1024
UNSUPPORTED: tuple[Unsupported, ...] = (
    Unsupported(
        "status_listen",
        lambda s: any(listener.ssl for listener in s.status_listen),
        "an HTTPS Status API listener is not implemented; list plain entries only",
    ),
    Unsupported(
        "admin_listen",
        lambda s: any(listener.ssl for listener in s.admin_listen),
        "an HTTPS Admin API listener is not implemented; list plain entries only",
    ),
    Unsupported(
        "admin_error_log",
        lambda s: s.admin_error_log not in (SPECS["admin_error_log"].default, s.proxy_error_log),
        "the Admin API writes its error lines to proxy_error_log; leave admin_error_log at its default or set it to "
        "the proxy_error_log value",
    ),
    Unsupported(
        "proxy_error_log",
        lambda s: not _one_word(s.proxy_error_log),
        "give a path only (the level is log_level)",
    ),
    Unsupported(
        "proxy_access_log",
        lambda s: not _one_word(s.proxy_access_log),
        "the proxy access log always has Kong's own format, so a format name after the path would be ignored; "
        "give a path or off",
    ),
    Unsupported(
        "admin_access_log",
        lambda s: not _one_word(s.admin_access_log),
        "the Admin API access log always has nginx's combined format, so a format name after the path would be "
        "ignored; give a path or off",
    ),
    Unsupported(
        "real_ip_header",
        lambda s: s.real_ip_header.lower() == "proxy_protocol",
        "this gateway does not read the PROXY protocol header; name an HTTP header",
    ),
    Unsupported(
        "client_header_buffer_size",
        lambda s: s.client_header_buffer_size > s.large_header_buffer_size,
        "a request line or header line longer than one large_client_header_buffers buffer is refused here whatever "
        "the first buffer's size; raise large_client_header_buffers instead",
    ),
    Unsupported(
        "ssl_session_cache_size",
        lambda s: s.ssl_session_cache_size not in (0, 10 * _KB * _KB),
        "the session cache is OpenSSL's own per-process cache, whose size is not set; 10m (Kong's default) keeps it, "
        "0 turns it off",
    ),
)
"""Every value refused although Kong takes it, and why; docs/compatibility.md lists the same."""


def _refuse_unsupported(settings: Settings, raw: Mapping[str, str]) -> None:
    for rule in UNSUPPORTED:
        if rule.refused(settings):
            raise ConfigError(f"{rule.key} = {raw[rule.key].strip()} is not supported: {rule.reason}")
