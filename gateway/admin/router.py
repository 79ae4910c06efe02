"""Path patterns to handlers, with lapis' precedence and Kong's trailing-slash and method rules.

Patterns are Kong's own (``/services/:services/routes``): a ``:name`` segment matches one non-empty
segment and is handed to the handler still percent-encoded (Kong unescapes where it uses them, and
builds ``next`` links from the raw segment). When several patterns match, the one with more literal
segments wins, earlier literals first (``/upstreams/:u/targets/all`` beats ``/upstreams/:u/targets/:t``).

Kong's ``default_route`` retries a path without its trailing slash (and with one), so ``/services/``
is ``/services``. A known path with an unsupported method answers 405 ``Method not allowed``; ``HEAD``
runs ``GET``; ``OPTIONS`` answers 204 with the ``Allow`` list.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Route", "Router"]

Handler = Callable[[Any], Awaitable[Any]]


@dataclass(slots=True)
class Route:
    """One path pattern and its method handlers."""

    pattern: str
    segments: tuple[str, ...]
    methods: dict[str, Handler] = field(default_factory=dict)
    disabled: bool = False
    accepts_yaml: bool = False

    @property
    def rank(self) -> tuple[int, ...]:
        """Higher is more specific: literal segments count, earlier ones first."""
        return tuple(0 if s.startswith(":") else 1 for s in self.segments)

    def allowed(self) -> list[str]:
        names = set(self.methods)
        if "GET" in names:
            names.add("HEAD")
        names.add("OPTIONS")
        return sorted(names)


def _split(path: str) -> tuple[str, ...]:
    return tuple(path.strip("/").split("/")) if path.strip("/") else ()


class Router:
    """Patterns grouped by segment count; matching is a scan of the (few) patterns of that length."""

    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}
        self._by_length: dict[int, list[Route]] = {}

    def add(self, pattern: str, method: str, handler: Handler, accepts_yaml: bool = False) -> None:
        """Register (or override, as Kong's custom routes do) one method of a pattern."""
        route = self._route(pattern)
        route.methods[method] = handler
        route.accepts_yaml = route.accepts_yaml or accepts_yaml

    def disable(self, pattern: str) -> None:
        """``endpoints.disable``: the path exists but every method answers 404."""
        self._route(pattern).disabled = True

    def _route(self, pattern: str) -> Route:
        route = self._routes.get(pattern)
        if route is None:
            route = Route(pattern, _split(pattern))
            self._routes[pattern] = route
            self._by_length.setdefault(len(route.segments), []).append(route)
        return route

    def methods(self, pattern: str) -> dict[str, Handler]:
        """The handlers registered for a pattern (empty when unknown)."""
        route = self._routes.get(pattern)
        return dict(route.methods) if route is not None else {}

    def patterns(self) -> list[str]:
        return sorted(self._routes)

    def match(self, path: str) -> tuple[Route, dict[str, str]] | None:
        """The best route for a raw path and its ``:params`` (raw segments), or None."""
        segments = _split(path)
        best: tuple[Route, dict[str, str]] | None = None
        for route in self._by_length.get(len(segments), ()):
            params: dict[str, str] = {}
            for want, got in zip(route.segments, segments, strict=True):
                if want.startswith(":"):
                    if not got:
                        break
                    params[want[1:]] = got
                elif want != got:
                    break
            else:
                if best is None or route.rank > best[0].rank:
                    best = (route, params)
        return best
