"""Route matching as Kong's default ``traditional_compatible`` router does it, compiled once per snapshot.

Theory of operation (``kong/router/transform.lua``, ``atc.lua``, ``utils.lua``):

1. Each route becomes one or more *matchers*. A route whose paths mix regexes and prefixes of different
   lengths is split into one matcher per group (all regexes; each prefix length), each with its own
   priority and a derived uuid5 id, exactly as ``split_routes_and_services_by_path`` does.
2. A matcher's priority is Kong's 64-bit ``get_priority``: number of non-empty fields (methods, hosts,
   headers, snis, paths) in the top 3 bits, then "plain hosts only", the header count, a regex bit,
   ``regex_priority`` (regex paths only) and the prefix length. Matchers are tried by descending
   ``(priority, id)``: ties go to the greater uuid, as in the ATC router's ``BTreeMap`` walked in reverse.
3. Conditions (all must hold): SNI (only when the request is https; plain HTTP ignores ``snis`` so an
   https-only route can answer 426, reference 1.5), methods, hosts (exact, ``*.x`` suffix, ``x.*`` prefix,
   case-sensitive; ``host:port`` entries also require the port, which is the Host header's or else the
   listener's), paths (prefix ``startswith``, or ``~`` regex anchored at the start, on the normalized
   path), headers (names case-insensitive with ``-``/``_`` equivalent, values lowercased; ``~*`` values
   are regexes searched in the lowercased value). Route ``protocols`` are *not* a condition here: the
   runloop turns an https-only match over plain HTTP into 426 or a redirect.
   Regexes are compiled by ``gateway.entities.route_regex`` (RE2: time linear in the path, whatever the
   pattern), the module the write-time validation uses, so a stored route compiles here. One that does not
   (written before that validation existed) is left out with Kong's ``could not add route`` error line.
4. The common case is fast: matchers are indexed by exact route host; a request host picks a pre-merged,
   pre-sorted candidate list (exact-host matchers + host-less/wildcard matchers), so a lookup is one dict
   access plus a short scan.
5. Like Kong's router (its match LRU cache of ``MATCH_CACHE_SIZE`` entries), answers are cached per router, so
   per snapshot: the same method, path, Host, port, scheme and SNI give the same ``Match`` object (a snapshot
   swap starts with an empty cache). A ``Match`` is read-only once made, except ``upstream_uri``, which the
   proxy fills in once: it depends only on the route, the service and the path, all part of the key. Routers
   with ``headers`` conditions are not cached (the key would need the headers). The cache is emptied when full.

Path helpers (``normalize_path``, ``escape_path``, ``upstream_uri_v0``/``v1``) live here because they are
route semantics: what the router matched decides what is sent upstream.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gateway.entities import route_regex
from gateway.entities.net import normalize_path as _normalize_path
from gateway.entities.route_regex import RouteRegex

__all__ = [
    "Match",
    "Route",
    "Router",
    "escape_path",
    "normalize_path",
    "route_priority",
    "split_host_port",
    "upstream_uri_v0",
    "upstream_uri_v1",
]

HTTP_PROTOCOLS = frozenset(("http", "https", "grpc", "grpcs"))
_SPLIT_NAMESPACE = uuid.UUID("7f145bf9-0dce-4f91-98eb-debbce4b9f6b")
_MAX_HEADER_COUNT = 255
_PLAIN_HOST_ONLY_BIT = 1 << 60
_REGEX_URL_BIT = 1 << 51

_EXACT, _PREFIX, _SUFFIX = 0, 1, 2
MATCH_CACHE_SIZE = 5000  # Kong's router LRU size


# ----------------------------------------------------------------------------------------- path helpers
_ESCAPE_RE = re.compile(r"[^!#$&'()*+,/:;=?@\[\]A-Za-z0-9\-_.~%]")


def normalize_path(path: str) -> str:
    """Kong's ``normalize(uri, merge_slashes=true)``: decode unreserved escapes, drop dot segments, merge ``//``."""
    return _normalize_path(path, True)


def _pct_escape(match: re.Match[str]) -> str:
    return "%%%02X" % (ord(match.group(0)) & 0xFF)


def escape_path(path: str) -> str:
    """Kong's ``escape``: percent-encode what may not appear raw in a request line; keep the rest as is."""
    if _ESCAPE_RE.search(path) is None:
        return path
    return _ESCAPE_RE.sub(_pct_escape, path)


def _sanitize_postfix(postfix: str) -> str:
    if not postfix:
        return postfix
    if postfix in (".", ".."):
        return ""
    if postfix.startswith("./"):
        return postfix[2:]
    if postfix.startswith("../"):
        return postfix[3:]
    return postfix


def upstream_uri_v0(strip_path: bool, prefix: str | None, req_uri: str, base: str) -> str:
    """``get_upstream_uri_v0``: join the service path and the (stripped) request path; the only mode of
    the ``traditional_compatible`` router."""
    postfix = _sanitize_postfix(req_uri[len(prefix or "/") :])
    if base.endswith("/"):
        if strip_path:
            if postfix == "":
                if base == "/":
                    return "/"
                if req_uri.endswith("/"):
                    return base
                return base[:-1]
            if postfix.startswith("/"):
                return base[:-1] + postfix
            return base + postfix
        return base + req_uri[1:]
    if strip_path:
        if postfix == "":
            if len(req_uri) > 1 and req_uri.endswith("/"):
                return base + "/"
            return base
        if postfix.startswith("/"):
            return base + postfix
        return base + "/" + postfix
    if req_uri == "/":
        return base
    return base + req_uri


def upstream_uri_v1(strip_path: bool, prefix: str | None, req_uri: str, base: str) -> str:
    """``path_handling = v1`` (traditional router only; deprecated): plain concatenation with one slash."""
    uri = req_uri[len(prefix) :] if strip_path and prefix else req_uri
    if uri == "":
        uri = "/"
    if not uri.startswith("/"):
        uri = "/" + uri
    if base == "/":
        return uri
    if base.endswith("/"):
        return base + uri[1:]
    return base + uri if uri != "/" else base


def split_host_port(value: str) -> tuple[str, int | None]:
    """``split_host_port``: split at the first ``:`` when what follows is a number, else no port."""
    i = value.find(":")
    if i == -1:
        return value, None
    rest = value[i + 1 :]
    if rest.isdigit():
        return value[:i], int(rest)
    return value, None


# ----------------------------------------------------------------------------------------- compiled routes
class Route:
    """One route row, compiled: the fields the runloop needs after a match."""

    __slots__ = (
        "grpc",
        "https_only",
        "https_redirect_status_code",
        "id",
        "name",
        "path_handling",
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
        self.strip_path: bool = bool(row.get("strip_path", True))
        self.preserve_host: bool = bool(row.get("preserve_host", False))
        self.path_handling: str = row.get("path_handling") or "v0"
        self.https_redirect_status_code: int = int(row.get("https_redirect_status_code") or 426)
        self.service = service  # opaque to the router: the snapshot's compiled service, or None


class Match:
    """The router's answer: the route, its service, and what the path match produced."""

    __slots__ = ("captures", "prefix", "route", "service", "upstream_uri")

    def __init__(self, route: Route, prefix: str | None, captures: dict[str, str] | None) -> None:
        self.route = route
        self.service = route.service
        self.prefix = prefix  # the matched path when strip_path, else None (Kong's match_t.prefix)
        self.captures = captures
        #: the escaped upstream path for the matched request path, set by the proxy on first use (rule 5)
        self.upstream_uri: str | None = None


_UNCACHED = Match.__new__(Match)  # "not in the match cache" (a cached answer may be None: no route)


def _wildcard(value: str) -> tuple[int, str]:
    if value.startswith("*"):
        return _SUFFIX, value[1:]
    if value.endswith("*"):
        return _PREFIX, value[:-1]
    return _EXACT, value


def _sni_matcher(value: str) -> tuple[int, str]:
    if value.endswith("*"):
        return _PREFIX, value[:-1]
    if len(value) > 1 and value.endswith("."):
        value = value[:-1]
    if value.startswith("*"):
        return _SUFFIX, value[1:]
    return _EXACT, value


def _name_matches(kind: int, pattern: str, value: str) -> bool:
    if kind == _EXACT:
        return value == pattern
    if kind == _SUFFIX:
        return value.endswith(pattern)
    return value.startswith(pattern)


def _norm_header_name(name: str) -> str:
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


class _Matcher:
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
                compiled_headers.append((_norm_header_name(name), plain, regexes))
            self.headers = tuple(compiled_headers)
        snis = row.get("snis")
        self.snis: tuple[tuple[int, str], ...] | None = tuple(_sni_matcher(s) for s in snis) if snis else None

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
        if self.snis is not None and https and (sni is None or not any(_name_matches(k, v, sni) for k, v in self.snis)):
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
            if (hport is None or hport == port) and _name_matches(kind, value, host):
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


def _matchers(route: Route, row: Mapping[str, Any]) -> list[_Matcher]:
    """The matchers of one route: one, or one per path group when its paths mix regexes and prefix lengths."""
    paths = row.get("paths") or None
    groups = _group_paths(paths) if paths and len(paths) > 1 else None
    if groups is None or len(groups) == 1:
        return [_Matcher(route, row, paths, route.id)]
    return [
        _Matcher(route, row, group, str(uuid.uuid5(_SPLIT_NAMESPACE, f"{route.id}#{index}")))
        for index, group in enumerate(groups, start=1)
    ]


class Router:
    """The compiled router of one snapshot. ``uses_headers`` tells the caller whether to build the header map."""

    __slots__ = ("_by_host", "_cache", "_general", "routes", "uses_headers")

    def __init__(self, routes: Iterable[tuple[Mapping[str, Any], Any]], log: Any = None) -> None:
        """``routes``: (route row, compiled service or None) pairs; rows of non-HTTP protocols are skipped.

        A route whose regex the engine refuses is left out and reported on ``log`` (an ``ErrorLog``), as Kong's
        ``new_from_scratch`` does with a route the ATC router cannot add.
        """
        matchers: list[_Matcher] = []
        self.routes: list[Route] = []
        for row, service in routes:
            protocols = row.get("protocols") or ["http", "https"]
            if not any(p in HTTP_PROTOCOLS for p in protocols):
                continue
            route = Route(row, service)
            try:
                route_matchers = _matchers(route, row)
            except route_regex.RegexError as exc:
                if log is not None:
                    log.error(f"could not add route: {route.id}, err: {exc}")
                continue
            self.routes.append(route)
            matchers.extend(route_matchers)
        matchers.sort(key=lambda m: m.sort_key, reverse=True)
        self.uses_headers = any(m.headers is not None for m in matchers)
        general = [m for m in matchers if not m.exact_hosts]
        by_host: dict[str, list[_Matcher]] = {}
        for m in matchers:
            for h in m.exact_hosts:
                by_host.setdefault(h, []).append(m)
        self._general: tuple[_Matcher, ...] = tuple(general)
        self._cache: dict[tuple[object, ...], Match | None] | None = None if self.uses_headers else {}
        self._by_host: dict[str, tuple[_Matcher, ...]] = {
            h: tuple(sorted([*ms, *general], key=lambda m: m.sort_key, reverse=True)) for h, ms in by_host.items()
        }

    def match(
        self,
        method: str,
        path: str,
        host_header: str | None,
        listen_port: int,
        https: bool = False,
        sni: str | None = None,
        headers: Mapping[str, list[str]] | None = None,
    ) -> Match | None:
        """Find the route for a request.

        Args:
            method: request method.
            path: the normalized request path (no query string), see ``normalize_path``.
            host_header: the raw Host header value (may carry ``:port``), or None.
            listen_port: the port the request arrived on (used when Host has no port).
            https: whether the downstream connection is TLS.
            sni: the TLS server name, if any.
            headers: request headers keyed by ``_``-normalized lowercase name (only needed when
                ``uses_headers``).
        """
        cache = self._cache
        if cache is None:
            return self._match(method, path, host_header, listen_port, https, sni, headers)
        key = (method, path, host_header, listen_port, https, sni)
        found = cache.get(key, _UNCACHED)
        if found is not _UNCACHED:
            return found
        if len(cache) >= MATCH_CACHE_SIZE:
            cache.clear()
        result = cache[key] = self._match(method, path, host_header, listen_port, https, sni, headers)
        return result

    def _match(
        self,
        method: str,
        path: str,
        host_header: str | None,
        listen_port: int,
        https: bool,
        sni: str | None,
        headers: Mapping[str, list[str]] | None,
    ) -> Match | None:
        if host_header is None:
            host, port = "", None
        else:
            host, port = split_host_port(host_header)
        candidates = self._by_host.get(host, self._general)
        req_port = listen_port if port is None else port
        for m in candidates:
            result = m.match(method, path, host, req_port, https, sni, headers)
            if result is not None:
                return result
        return None


def header_map(headers: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Request headers keyed the way route ``headers`` conditions name them."""
    out: dict[str, list[str]] = {}
    for name, value in headers:
        out.setdefault(_norm_header_name(name), []).append(value)
    return out
