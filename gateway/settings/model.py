"""The parsed settings, one frozen ``Settings`` whose attribute names are the kong.conf keys."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from gateway.settings.listeners import Listener
from gateway.settings.parsers import parse_size

__all__ = ["Settings"]


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
    allow_debug_header: bool
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
        return parse_size("large_client_header_buffers", parts[-1]) if parts else 8192

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
