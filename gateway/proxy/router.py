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
   runloop turns an https-only match over plain HTTP into 426 or a redirect. Rules 1 to 3 are ``matchers.py``.
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
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.entities import route_regex
from gateway.entities.net import normalize_path as _normalize_path
from gateway.proxy.matchers import Match, Matcher, Route, matchers_of, norm_header_name, split_host_port

__all__ = ["Router", "escape_path", "header_map", "normalize_path", "upstream_uri_v0", "upstream_uri_v1"]

HTTP_PROTOCOLS = frozenset(("http", "https", "grpc", "grpcs"))
MATCH_CACHE_SIZE = 5000  # Kong's router LRU size


# ----------------------------------------------------------------------------------------- path helpers
_ESCAPE_RE = re.compile(r"[^!#$&'()*+,/:;=?@\[\]A-Za-z0-9\-_.~%]")


def normalize_path(path: str) -> str:
    """Kong's ``normalize(uri, merge_slashes=true)``: decode unreserved escapes, drop dot segments, merge ``//``.

    A path without ``%``, ``.`` or ``//`` is already normal (``entities.net.normalize_path`` returns it as is): that
    test runs here, compiled, so the common request does not call into the interpreted module.
    """
    if "%" not in path and "." not in path and "//" not in path:
        return path
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


class Router:
    """The compiled router of one snapshot. ``uses_headers`` tells the caller whether to build the header map."""

    __slots__ = ("_by_host", "_cache", "_general", "_last", "_last_key", "routes", "uses_headers")

    def __init__(self, routes: Iterable[tuple[Mapping[str, Any], Any]], log: Any = None) -> None:
        """``routes``: (route row, compiled service or None) pairs; rows of non-HTTP protocols are skipped.

        A route whose regex the engine refuses is left out and reported on ``log`` (an ``ErrorLog``), as Kong's
        ``new_from_scratch`` does with a route the ATC router cannot add.
        """
        matchers: list[Matcher] = []
        self.routes: list[Route] = []
        for row, service in routes:
            protocols = row.get("protocols") or ["http", "https"]
            if not any(p in HTTP_PROTOCOLS for p in protocols):
                continue
            route = Route(row, service)
            try:
                route_matchers = matchers_of(route, row)
            except route_regex.RegexError as exc:
                if log is not None:
                    log.error(f"could not add route: {route.id}, err: {exc}")
                continue
            self.routes.append(route)
            matchers.extend(route_matchers)
        matchers.sort(key=lambda m: m.sort_key, reverse=True)
        self.uses_headers = any(m.headers is not None for m in matchers)
        general = [m for m in matchers if not m.exact_hosts]
        by_host: dict[str, list[Matcher]] = {}
        for m in matchers:
            for h in m.exact_hosts:
                by_host.setdefault(h, []).append(m)
        self._general: tuple[Matcher, ...] = tuple(general)
        self._cache: dict[tuple[object, ...], Match | None] | None = None if self.uses_headers else {}
        #: the cache's last answer and its key: a request like the one before (a keepalive client, a health check)
        #: is answered by comparing six values, without hashing the new path and host strings for the dict
        self._last_key: tuple[object, ...] = ()
        self._last: Match | None = None
        self._by_host: dict[str, tuple[Matcher, ...]] = {
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
        if key == self._last_key:
            return self._last
        found = cache.get(key)
        if found is None and key not in cache:  # a miss (a cached None is a 404's, rare)
            if len(cache) >= MATCH_CACHE_SIZE:
                cache.clear()
            found = cache[key] = self._match(method, path, host_header, listen_port, https, sni, headers)
        self._last_key, self._last = key, found
        return found

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
        out.setdefault(norm_header_name(name), []).append(value)
    return out
