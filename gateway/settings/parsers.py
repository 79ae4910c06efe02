"""kong.conf value parsers: each takes ``(key, raw)`` and returns the value or raises ``ConfigError`` naming the
key and what is accepted (nginx size and time syntax, on/off, lists, Kong's header tokens and plugin names)."""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = [
    "HEADER_TOKENS",
    "UPSTREAM_HEADER_TOKENS",
    "ConfigError",
    "enum_parser",
    "int_parser",
    "parse_bool",
    "parse_duration",
    "parse_list",
    "parse_optional",
    "parse_optional_int",
    "parse_plugins",
    "parse_size",
    "parse_str",
    "token_list_parser",
]


class ConfigError(ValueError):
    """A setting could not be read or validated; the message names the key."""


def parse_bool(key: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("on", "true", "yes", "1"):
        return True
    if value in ("off", "false", "no", "0"):
        return False
    raise ConfigError(f"{key} has an invalid value: '{raw}' (accepted: on, off)")


def int_parser(minimum: int | None = None, maximum: int | None = None) -> Callable[[str, str], int]:
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


def enum_parser(*choices: str) -> Callable[[str, str], str]:
    def parse(key: str, raw: str) -> str:
        value = raw.strip()
        if value not in choices:
            raise ConfigError(f"{key} has an invalid value: '{value}' (accepted: {', '.join(choices)})")
        return value

    return parse


_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024 * 1024, "g": 1024 * 1024 * 1024}


def parse_size(key: str, raw: str) -> int:
    """nginx size syntax: ``8k``, ``10m``, ``0`` (bytes)."""
    match = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)\s*", raw)
    if not match:
        raise ConfigError(f"{key} has an invalid size: '{raw}' (examples: 0, 8k, 10m)")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]


_TIME_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(key: str, raw: str) -> int:
    """nginx time syntax in seconds: ``60``, ``60s``, ``10m``, ``1d``."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", raw)
    if not match:
        raise ConfigError(f"{key} has an invalid duration: '{raw}' (examples: 60, 10m, 1d)")
    return int(match.group(1)) * _TIME_UNITS[match.group(2)]


def parse_list(key: str, raw: str) -> tuple[str, ...]:
    value = raw.strip()
    if value in ("", "NONE", "off"):
        return ()
    return tuple(part.strip() for part in value.split(",") if part.strip())


HEADER_TOKENS = frozenset(
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
UPSTREAM_HEADER_TOKENS = frozenset({"x-kong-request-id"})


def token_list_parser(tokens: frozenset[str]) -> Callable[[str, str], tuple[str, ...]]:
    """A list whose entries must be ``off`` or one of ``tokens`` (any case), with Kong's message otherwise."""

    def parse(key: str, raw: str) -> tuple[str, ...]:
        values = parse_list(key, raw)
        for token in values:
            if token != "off" and token.lower() not in tokens:
                raise ConfigError(f"{key}: invalid entry '{token}'")
        return values

    return parse


def parse_plugins(key: str, raw: str) -> tuple[str, ...]:
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


def parse_optional(key: str, raw: str) -> str | None:
    value = raw.strip()
    return None if value in ("", "NONE") else value


def parse_optional_int(key: str, raw: str) -> int | None:
    if raw.strip().upper() in ("", "NONE"):
        return None
    return int_parser(0)(key, raw)


def parse_str(key: str, raw: str) -> str:
    return raw.strip()
