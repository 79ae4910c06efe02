"""A route compiled into matchers: Kong's priority, and the conditions a request must meet.

See ``router`` for the rules (1 to 3 are here: the split by path group, the priority, the conditions). ``Route``
is what the runloop needs after a match, ``Match`` the router's answer; ``Matcher`` one ATC matcher.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gateway.entities import route_regex
from gateway.entities.route_regex import RouteRegex

if TYPE_CHECKING:
    from gateway.proxy.lane import Lane

__all__ = [
    "Match",
    "Matcher",
    "Route",
    "matchers_of",
    "name_matches",
    "norm_header_name",
    "route_priority",
    "sni_pattern",
    "split_host_port",
]

_SPLIT_NAMESPACE = uuid.UUID("7f145bf9-0dce-4f91-98eb-debbce4b9f6b")
_MAX_HEADER_COUNT = 255
_PLAIN_HOST_ONLY_BIT = 1 << 60
_REGEX_URL_BIT = 1 << 51

_EXACT, _PREFIX, _SUFFIX = 0, 1, 2


def split_host_port(value: str) -> tuple[str, int | None]:
    """``split_host_port``: split at the first ``:`` when what follows is a number, else no port."""
    i = value.find(":")
    if i == -1:
        return value, None
    rest = value[i + 1 :]
    if rest.isdigit():
        return value[:i], int(rest)
    return value, None


class Route:
    """One route row, compiled: the fields the runloop needs after a match."""

    __slots__ = (
        "grpc",
        "https_only",
        "https_redirect_status_code",
        "id",
        "name",
        "path_handling",
        "plain_grpc",
        "preserve_host",
        "protocols",
        "row",
        "service",
        "strip_path",
    )

    def __init__(self, row: Mapping[str, Any], service: Any) -> None:
        self.row = row
        self.id: str = row["id"]
        self.name: str | None = row.get("name")
        protocols = frozenset(row.get("protocols") or ("http", "https"))
        self.protocols = protocols
        self.https_only = "https" in protocols and "http" not in protocols
        self.grpc = "grpc" in protocols or "grpcs" in protocols
        self.plain_grpc = "grpc" in protocols  # without it, a gRPC route answers non-TLS gRPC with grpc-status 1
        self.strip_path: bool = bool(row.get("strip_path", True))
        self.preserve_host: bool = bool(row.get("preserve_host", False))
        self.path_handling: str = row.get("path_handling") or "v0"
        self.https_redirect_status_code: int = int(row.get("https_redirect_status_code") or 426)
        self.service = service  # opaque to the router: the snapshot's compiled service, or None


class Match:
    """The router's answer: the route, its service, and what the path match produced."""

    __slots__ = ("captures", "lane", "prefix", "route", "service", "upstream_uri")

    def __init__(self, route: Route, prefix: str | None, captures: dict[str, str] | None) -> None:
        self.route = route
        self.service = route.service
        self.prefix = prefix  # the matched path when strip_path, else None (Kong's match_t.prefix)
        self.captures = captures
        #: the escaped upstream path for the matched request path, set by the proxy on first use (rule 5)
        self.upstream_uri: str | None = None
        #: the common case compiled for this match (``proxy.lane``), set by the proxy after a first full pass
        self.lane: Lane | None = None


def _wildcard(value: str) -> tuple[int, str]:
    if value.startswith("*"):
        return _SUFFIX, value[1:]
    if value.endswith("*"):
        return _PREFIX, value[:-1]
    return _EXACT, value


def sni_pattern(value: str) -> tuple[int, str]:
    """A route's ``snis`` entry as (kind, pattern): Kong's ``sni_op_transform`` / ``sni_val_transform``; the HTTP
    and the stream routers both use it."""
    if value.endswith("*"):
        return _PREFIX, value[:-1]
    if len(value) > 1 and value.endswith("."):
        value = value[:-1]
    if value.startswith("*"):
        return _SUFFIX, value[1:]
    return _EXACT, value


def name_matches(kind: int, pattern: str, value: str) -> bool:
    """Whether ``value`` matches a (kind, pattern) of ``sni_pattern`` or of a host."""
    if kind == _EXACT:
        return value == pattern
    if kind == _SUFFIX:
        return value.endswith(pattern)
    return value.startswith(pattern)


def norm_header_name(name: str) -> str:
    """A header name as route ``headers`` conditions key it (lowercase, ``-`` as ``_``)."""
    return name.lower().replace("-", "_")


def route_priority(row: Mapping[str, Any], paths: Sequence[str] | None) -> int:
    """Kong's ``get_priority`` for one (possibly split) route."""
    weight = 0
    for field in ("sources", "destinations", "methods", "hosts"):
        if row.get(field):
            weight += 1
    headers = row.get("headers") or {}
    header_count = min(len(headers), _MAX_HEADER_COUNT)
    if header_count:
        weight += 1
    if row.get("snis"):
        weight += 1
    hosts = row.get("hosts")
    plain_host_only = isinstance(hosts, list) and not any("*" in h for h in hosts)
    uri_length = 0
    regex_url = False
    if paths:
        weight += 1
        if paths[0].startswith("~"):
            regex_url = True
        else:
            uri_length = len(paths[0].encode("latin-1", "replace"))
    regex_priority = int(row.get("regex_priority") or 0) if regex_url else 0
    return (
        (weight << 61)
        | (_PLAIN_HOST_ONLY_BIT if plain_host_only else 0)
        | (_REGEX_URL_BIT if regex_url else 0)
        | (header_count << 52)
        | (regex_priority << 19)
        | (uri_length & 0x7FFFF)
    )


class Matcher:
    """One ATC matcher: the conditions of a route (or of one path group of it)."""

    __slots__ = ("exact_hosts", "headers", "hosts", "id", "methods", "paths", "priority", "route", "snis", "sort_key")

    def __init__(self, route: Route, row: Mapping[str, Any], paths: list[str] | None, matcher_id: str) -> None:
        self.route = route
        self.id = matcher_id
        self.priority = route_priority(row, paths)
        self.sort_key = (self.priority, uuid.UUID(matcher_id).bytes if _is_uuid(matcher_id) else matcher_id.encode())
        methods = row.get("methods")
        self.methods: frozenset[str] | None = frozenset(methods) if methods else None
        hosts = row.get("hosts")
        self.hosts: tuple[tuple[int, str, int | None], ...] | None = None
        self.exact_hosts: tuple[str, ...] = ()
        if hosts:
            compiled = []
            exact = []
            for h in hosts:
                name, port = split_host_port(h)
                kind, value = _wildcard(name)
                compiled.append((kind, value, port))
                if kind == _EXACT:
                    exact.append(value)
            self.hosts = tuple(compiled)
            # indexable only when every host entry is exact; otherwise the matcher goes to the general list
            if len(exact) == len(compiled):
                self.exact_hosts = tuple(dict.fromkeys(exact))
        self.paths: tuple[tuple[str | None, RouteRegex | None], ...] | None = None
        if paths:
            self.paths = tuple(
                (None, route_regex.compile_path(p)) if route_regex.is_path_regex(p) else (p, None) for p in paths
            )
        headers = row.get("headers")
        self.headers: tuple[tuple[str, tuple[str, ...], tuple[RouteRegex, ...]], ...] | None = None
        if headers:
            compiled_headers = []
            for name, values in headers.items():
                plain = tuple(v.lower() for v in values if not route_regex.is_header_regex(v))
                regexes = tuple(route_regex.compile_header(v) for v in values if route_regex.is_header_regex(v))
                compiled_headers.append((norm_header_name(name), plain, regexes))
            self.headers = tuple(compiled_headers)
        snis = row.get("snis")
        self.snis: tuple[tuple[int, str], ...] | None = tuple(sni_pattern(s) for s in snis) if snis else None

    def match(
        self,
        method: str,
        path: str,
        host: str,
        port: int,
        https: bool,
        sni: str | None,
        headers: Mapping[str, list[str]] | None,
    ) -> Match | None:
        """This matcher's ``Match`` for a request, or None: each condition it has must hold (Kong's ATC ``and``)."""
        if self.snis is not None and https and (sni is None or not any(name_matches(k, v, sni) for k, v in self.snis)):
            return None
        if self.methods is not None and method not in self.methods:
            return None
        if self.hosts is not None and not self._host_matches(host, port):
            return None
        matched_path: str | None = None
        captures: dict[str, str] | None = None
        if self.paths is not None:
            found = self._path_match(path)
            if found is None:
                return None
            matched_path, captures = found
        if self.headers is not None and (headers is None or not self._headers_match(headers)):
            return None
        route = self.route
        return Match(route, matched_path if route.strip_path else None, captures)

    def _host_matches(self, host: str, port: int) -> bool:
        """One of the route's hosts (exact or wildcard, with its port if it names one) is the request's."""
        assert self.hosts is not None
        for kind, value, hport in self.hosts:
            if (hport is None or hport == port) and name_matches(kind, value, host):
                return True
        return False

    def _path_match(self, path: str) -> tuple[str, dict[str, str] | None] | None:
        """The first of the route's paths the request's path matches (prefix, or regex with its captures)."""
        assert self.paths is not None
        for prefix, regex in self.paths:
            if regex is None:
                assert prefix is not None
                if path.startswith(prefix):
                    return prefix, None
            else:
                found = regex.match(path)
                if found is not None:
                    return found
        return None

    def _headers_match(self, headers: Mapping[str, list[str]]) -> bool:
        """Every header condition has a value among the request's (plain values case-insensitive, or regex)."""
        assert self.headers is not None
        for name, plain, regexes in self.headers:
            values = headers.get(name)
            if not values:
                return False
            for value in values:
                lowered = value.lower()
                if lowered in plain or any(r.search(lowered) for r in regexes):
                    break
            else:
                return False
        return True


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _group_paths(paths: list[str]) -> list[list[str]]:
    groups: dict[int, list[str]] = {}
    for p in paths:
        key = 0 if p.startswith("~") else len(p.encode("latin-1", "replace"))
        groups.setdefault(key, []).append(p)
    return list(groups.values())


def matchers_of(route: Route, row: Mapping[str, Any]) -> list[Matcher]:
    """The matchers of one route: one, or one per path group when its paths mix regexes and prefix lengths."""
    paths = row.get("paths") or None
    groups = _group_paths(paths) if paths and len(paths) > 1 else None
    if groups is None or len(groups) == 1:
        return [Matcher(route, row, paths, route.id)]
    return [
        Matcher(route, row, group, str(uuid.uuid5(_SPLIT_NAMESPACE, f"{route.id}#{index}")))
        for index, group in enumerate(groups, start=1)
    ]
