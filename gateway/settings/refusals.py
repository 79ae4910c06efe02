"""What is checked once every value is parsed: settings that must agree with each other, and the values Kong
honours that this gateway cannot (``UNSUPPORTED``), refused with the reason (rules 4 and 5 of ``gateway.settings``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gateway.settings.model import Settings
from gateway.settings.parsers import ConfigError, parse_size
from gateway.settings.specs import SPECS

__all__ = ["UNSUPPORTED", "Unsupported", "cross_check", "refuse_unsupported"]


def cross_check(settings: Settings) -> None:
    """Settings that are valid alone and must agree with each other (rule 4), each with the message naming them."""
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
    parse_size("large_client_header_buffers", lch[1])
    wp = settings.worker_processes
    if wp != "auto" and not (wp.isdigit() and int(wp) >= 1):
        raise ConfigError(f"worker_processes has an invalid value: '{wp}' (accepted: auto or a number >= 1)")


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
        "pg_ro_host",
        lambda s: s.pg_ro_host is not None,
        "there is no read-only connection to a replica: every query goes to pg_host; leave pg_ro_host unset",
    ),
    Unsupported(
        "ssl_session_cache_size",
        lambda s: s.ssl_session_cache_size not in (0, 10 * _KB * _KB),
        "the session cache is OpenSSL's own per-process cache, whose size is not set; 10m (Kong's default) keeps it, "
        "0 turns it off",
    ),
)
"""Every value refused although Kong takes it, and why; docs/compatibility.md lists the same."""


def refuse_unsupported(settings: Settings, raw: Mapping[str, str]) -> None:
    for rule in UNSUPPORTED:
        if rule.refused(settings):
            raise ConfigError(f"{rule.key} = {raw[rule.key].strip()} is not supported: {rule.reason}")
