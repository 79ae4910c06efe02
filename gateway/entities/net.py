"""Host, IP and path helpers with Kong's exact acceptance rules (``kong/tools/ip.lua``, ``kong/tools/uri.lua``).

These are deliberately not ``ipaddress``/``urllib`` based: Kong's validators accept and reject specific
shapes (``256.1.1.1`` is "invalid", ``a..b`` is a bad hostname, a trailing dot is fine, a port above 65535
is "invalid port number") and the entity error messages quote those outcomes, so the rules are ported
one by one. Everything here is pure and cheap; the router may reuse ``normalize_path``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "HostInfo",
    "check_hostname",
    "format_host",
    "hostname_type",
    "is_valid_ip",
    "is_valid_ip_or_cidr",
    "normalize_ip",
    "normalize_path",
]

_IPV4_RE = re.compile(r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})")
_IPV4_PORT_RE = re.compile(r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3}):(\d+)")
_HEX4 = r"([0-9A-Fa-f]{1,4})"
_IPV6_RE = re.compile(":".join([_HEX4] * 8))
_HOSTNAME_CHARS = re.compile(r"[0-9A-Za-z\-._]+")


@dataclass(frozen=True, slots=True)
class HostInfo:
    """The result of ``normalize_ip``: ``type`` is ``ipv4``, ``ipv6`` or ``name``."""

    type: str
    host: str
    port: int | None


def hostname_type(name: str) -> str:
    """More than one colon -> ipv6; only digits and dots -> ipv4; anything else -> name."""
    if name.count(":") > 1:
        return "ipv6"
    if re.fullmatch(r"[\d.]+", name.replace(":", "")):
        return "ipv4"
    return "name"


def _normalize_ipv4(address: str) -> tuple[str | None, int | str | None]:
    m = (_IPV4_PORT_RE if ":" in address else _IPV4_RE).fullmatch(address)
    if not m:
        return None, f"invalid ipv4 address: {address}"
    octets = [int(x) for x in m.groups()[:4]]
    if any(o > 255 for o in octets):
        return None, f"invalid ipv4 address: {address}"
    port: int | None = None
    if m.lastindex == 5:
        port = int(m.group(5))
        if port > 65535:
            return None, "invalid port number"
    return ".".join(str(o) for o in octets), port


def _normalize_ipv6(address: str) -> tuple[str | None, int | str | None]:
    port: int | None = None
    m = re.fullmatch(r"\[([^\]]*)\](.*)", address, re.S)
    if m:
        check, rest = m.group(1), m.group(2)
        if rest:
            pm = re.fullmatch(r":(\d*)", rest)
            if not pm:
                return None, "invalid ipv6 address"
            port = int(pm.group(1)) if pm.group(1) else 0
            if port > 65535:
                return None, "invalid port number"
    else:
        check = address
    if check.startswith(":"):
        check = "0" + check
    if check.endswith(":"):
        check = check + "0"
    if "::" in check:
        ins = ":" + "0:" * (8 - check.count(":"))
        check = check.replace("::", ins, 1)
    hm = _IPV6_RE.fullmatch(check)
    if not hm:
        return None, f"invalid ipv6 address: {address}"
    return ":".join(g.rjust(4, "0") for g in hm.groups()).lower(), port


def check_hostname(address: str) -> tuple[str | None, int | str | None]:
    """Kong's ``check_hostname``: ``[A-Za-z0-9-._]`` labels, none ending in ``-``, no empty label but a final one."""
    name = address
    port: int | None = None
    pm = re.search(r":(\d+)$", address)
    if pm:
        name = name[: -(len(pm.group(1)) + 1)]
        port = int(pm.group(1))
        if port > 65535:
            return None, "invalid port number"
    if not _HOSTNAME_CHARS.fullmatch(name):
        return None, f"invalid hostname: {address}"
    labels = name.split(".")
    for index, label in enumerate(labels, 1):
        if label.endswith("-") or (label == "" and index != len(labels)):
            return None, f"invalid hostname: {address}"
    return name, port


def normalize_ip(address: str) -> tuple[HostInfo | None, str | None]:
    """Classify and normalise ``address`` (ip, ip:port, [ipv6]:port, name, name:port).

    Returns ``(HostInfo, None)`` or ``(None, error)``, the error being Kong's text
    (``invalid port number``, ``invalid hostname: x``, ``invalid ipv4 address: x`` ...).
    """
    kind = hostname_type(address)
    fn = {"ipv4": _normalize_ipv4, "ipv6": _normalize_ipv6, "name": check_hostname}[kind]
    host, port = fn(address)
    if host is None:
        return None, str(port)
    return HostInfo(kind, host, port if isinstance(port, int) else None), None


def format_host(info: HostInfo, default_port: int | None = None) -> str:
    """``host[:port]`` with brackets around IPv6, as Kong formats targets (``kong.tools.ip.format_host``)."""
    port = info.port if info.port is not None else default_port
    host = f"[{info.host}]" if info.type == "ipv6" else info.host
    return host if port is None else f"{host}:{port}"


def is_valid_ip(value: str) -> bool:
    if not isinstance(value, str):
        return False
    kind = hostname_type(value)
    if kind == "ipv4":
        m = _IPV4_RE.fullmatch(value)
        return m is not None and all(int(x) <= 255 for x in m.groups())
    if kind == "ipv6" and not value.startswith("["):
        host, _ = _normalize_ipv6(value)
        return host is not None
    return False


def is_valid_ip_or_cidr(value: str) -> bool:
    """An IP, or ``ip/prefix`` with a prefix valid for its family (0-32 or 0-128)."""
    if is_valid_ip(value):
        return True
    ip, sep, prefix = value.partition("/")
    if not sep or not re.fullmatch(r"\d{1,3}", prefix) or str(int(prefix)) != prefix:
        return False
    if not is_valid_ip(ip):
        return False
    limit = 128 if hostname_type(ip) == "ipv6" else 32
    return int(prefix) <= limit


_RESERVED = frozenset(b"!*'();:@&=+$,/?%#[]")
_PCT_RE = re.compile(r"%([0-9A-Fa-f]{2})")


def _pct_decode(match: re.Match[str]) -> str:
    num = int(match.group(1), 16)
    return match.group(0).upper() if num in _RESERVED else chr(num)


def normalize_path(uri: str, merge_slashes: bool = False) -> str:
    """Kong's ``kong.tools.uri.normalize``: decode unreserved ``%XX``, upper-case reserved ones, drop dot segments.

    Routes use it to reject non-normalised prefix paths ("non-normalized path, consider use ... instead"); the
    router uses it with ``merge_slashes=True`` on every request path (strings are latin-1: one char per byte).
    """
    if uri in ("", "/"):
        return uri
    if "%" in uri:
        uri = _PCT_RE.sub(_pct_decode, uri)
    if "." not in uri and (not merge_slashes or "//" not in uri):
        return uri
    out: list[str] = []
    while uri:
        if uri == "/.":
            uri = "/"
        elif uri == "/..":
            uri = "/"
            if out:
                out.pop()
        elif uri in (".", ".."):
            uri = ""
        elif uri.startswith("../"):
            uri = uri[3:]
        elif uri.startswith("./") or uri.startswith("/./"):
            uri = uri[2:]
        elif uri.startswith("/../"):
            uri = uri[3:]
            if out:
                out.pop()
        elif merge_slashes and uri.startswith("//"):
            uri = uri[1:]
        else:
            i = uri.find("/", 1)
            if i != -1:
                out.append(uri[:i])
                uri = uri[i:]
            else:
                out.append(uri)
                uri = ""
    return "".join(out)
