"""``*_listen`` entries: ``host:port [flags...]`` -> ``Listener``; flags this gateway cannot honour are refused with
the reason (rule 5 of ``gateway.settings``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from gateway.settings.parsers import ConfigError

__all__ = ["Listener", "parse_listen", "parse_stream_listen"]


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


_LISTEN_FLAGS = {"ssl", "http2", "reuseport", "bind"}
"""Flags honoured (``http2``: HTTP/2 on proxy listeners, by ALPN with ``ssl``, with prior knowledge without; the Admin
API serves HTTP/1.1, see docs/compatibility.md; ``bind``: every address is
bound on its own socket anyway, which is what nginx's ``bind`` asks for)."""
_UNSUPPORTED_LISTEN_FLAGS = {
    "proxy_protocol": "this gateway does not read the PROXY protocol header",
    "deferred": "TCP_DEFER_ACCEPT is not applied to this gateway's listeners",
}


def parse_listen(key: str, raw: str) -> tuple[Listener, ...]:
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


def parse_stream_listen(key: str, raw: str) -> tuple[Listener, ...]:
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
    return parse_listen(key, raw)
