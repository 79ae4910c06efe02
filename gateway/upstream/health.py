"""The health of one target, and an upstream's ``healthchecks`` record as the checks read it.

``TargetHealth`` is what a balancer's address points at and what the checker counts into (four 8-bit counters:
successes, HTTP failures, TCP failures, timeouts; see ``healthcheck`` for the rules); ``Checks`` is the record
with Kong's defaults filled in, status lists as sets and the probe headers serialised.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.entities.upstreams import HEALTHCHECKS_DEFAULTS

__all__ = [
    "COUNTER_NAMES",
    "HTTP",
    "SUCCESS",
    "TCP",
    "TIMEOUT",
    "WORKSPACE",
    "Checks",
    "TargetHealth",
    "checks_of",
    "enable_tcp_probes",
    "uses_healthchecks",
]

WORKSPACE = "default"
COUNTER_NAMES = ("SUCCESS", "HTTP", "TCP", "TIMEOUT")
SUCCESS, HTTP, TCP, TIMEOUT = range(4)


def _merge(defaults: Mapping[str, Any], value: Any) -> dict[str, Any]:
    out = dict(defaults)
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(out.get(key), Mapping) and isinstance(item, Mapping):
                out[key] = _merge(out[key], item)
            elif item is not None:
                out[key] = item
    return out


def checks_of(upstream: Mapping[str, Any]) -> dict[str, Any]:
    """The upstream's ``healthchecks`` with Kong's defaults filled in."""
    return _merge(HEALTHCHECKS_DEFAULTS, upstream.get("healthchecks"))


#: the active check types probed in this process (grpc/grpcs: not reproduced)
_ACTIVE_TYPES = {"http", "https"}


def enable_tcp_probes() -> None:
    """Probe ``tcp`` active checks too: the process serves Kong's stream subsystem (``stream_listen``)."""
    _ACTIVE_TYPES.add("tcp")


def uses_healthchecks(upstream: Mapping[str, Any]) -> bool:
    """Kong's ``is_upstream_using_healthcheck``."""
    checks = checks_of(upstream)
    active, passive = checks["active"], checks["passive"]["unhealthy"]
    return bool(
        active["healthy"]["interval"]
        or active["unhealthy"]["interval"]
        or passive["tcp_failures"]
        or passive["timeouts"]
        or passive["http_failures"]
    )


class TargetHealth:
    """The health of one ``(ip, port, hostname)`` of an upstream, shared by every snapshot's address for it."""

    __slots__ = ("available", "counters", "host_header", "hostname", "ip", "port", "state", "tracked")

    def __init__(self, ip: str, port: int, hostname: str, host_header: str | None) -> None:
        self.ip = ip
        self.port = port
        self.hostname = hostname
        self.host_header = host_header
        self.state = "healthy"
        #: what the balancer reads on every pick
        self.available = True
        self.counters = [0, 0, 0, 0]
        self.tracked = True

    @property
    def label(self) -> str:
        return f"{self.hostname}({self.ip}:{self.port})"


class Checks:
    """The ``healthchecks`` record as the checker uses it (sets for status lists, the headers serialised)."""

    def __init__(self, checks: Mapping[str, Any]) -> None:
        active, passive = checks["active"], checks["passive"]
        self.raw = checks
        self.active_type: str = active["type"]
        self.timeout = float(active["timeout"])
        self.concurrency = max(1, int(active["concurrency"]))
        self.http_path: str = active["http_path"] or "/"
        self.https_sni: str | None = active.get("https_sni")
        self.verify = bool(active["https_verify_certificate"])
        self.headers = _headers(active.get("headers"))
        runs = self.active_type in _ACTIVE_TYPES
        self.intervals = {
            "healthy": float(active["healthy"]["interval"]) if runs else 0.0,
            "unhealthy": float(active["unhealthy"]["interval"]) if runs else 0.0,
        }
        self.modes: dict[str, dict[str, Any]] = {}
        for name, mode in (("active", active), ("passive", passive)):
            self.modes[name] = {
                "type": mode["type"],
                "healthy_statuses": frozenset(mode["healthy"]["http_statuses"] or ()),
                "successes": int(mode["healthy"]["successes"]),
                "unhealthy_statuses": frozenset(mode["unhealthy"]["http_statuses"] or ()),
                "tcp_failures": int(mode["unhealthy"]["tcp_failures"]),
                "timeouts": int(mode["unhealthy"]["timeouts"]),
                "http_failures": int(mode["unhealthy"]["http_failures"]),
            }


def _headers(value: Any) -> str:
    """``headers`` (a map of name -> list of values) as request lines (lua-resty-healthcheck's serialisation)."""
    if not isinstance(value, Mapping):
        return ""
    lines: list[str] = []
    for name, values in value.items():
        for item in values if isinstance(values, list | tuple) else [values]:
            lines.append(f"{name}: {item}")
    return "".join(line + "\r\n" for line in lines)
