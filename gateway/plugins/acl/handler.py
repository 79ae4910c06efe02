"""The acl plugin (Kong OSS ``kong/plugins/acl/handler.lua``, ``groups.lua``).

Theory of operation
-------------------
It runs in the access phase at Kong's priority 950, after the authentication plugins (mtls-auth is 1600), and reads
what they recorded on the ``PluginContext``: the consumer, the credential and the authenticated groups. Which
groups are checked, in Kong's order:

1. No consumer (neither ``ctx.consumer`` nor a credential's consumer): the authenticated groups (mtls-auth with
   ``skip_consumer_lookup`` sets the certificate's CN or DN); none at all -> 401 ``Unauthorized`` (403
   ``You cannot consume this service`` when a credential without consumer exists).
2. A consumer without a credential (mtls-auth's ``anonymous``), or ``always_use_authenticated_groups``: the
   authenticated groups when there are any.
3. Otherwise the consumer's groups (its ``acls`` rows). A consumer without groups is 401/403 under an ``allow``
   list (403 when a credential authenticated it) and passes a ``deny`` list.

With ``allow``, a request passes when one of its groups is listed; with ``deny``, when none is. A refused request is
answered 403 ``You cannot consume this service``. Both answers are ``kong.response.error``: Kong's error template,
by ``Accept``, with the request id.

A request that passes carries its groups upstream, joined with ``", "``: ``X-Consumer-Groups`` for a consumer's
groups, ``X-Authenticated-Groups`` for authenticated groups. Beyond Kong, the other of the two headers is always
removed, and ``hide_groups_header`` removes both, so that a client can never forge them (Kong leaves a client's copy
in place in those cases).

Caching: Kong caches each consumer's groups and invalidates them on acl writes. Here the consumer -> groups index is
built once per snapshot (every write builds a new one), and each instance remembers its verdict per consumer, so a
request pays two dict lookups.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from gateway.entities.index import foreign_id
from gateway.plugins.base import BuildContext, Exit, Plugin, PluginContext, register_handler

__all__ = ["H_AUTHENTICATED_GROUPS", "H_CONSUMER_GROUPS", "NAME", "Acl", "Decision", "consumer_groups"]

NAME: Final = "acl"
PRIORITY: Final = 950

H_CONSUMER_GROUPS: Final = "X-Consumer-Groups"
H_AUTHENTICATED_GROUPS: Final = "X-Authenticated-Groups"

_UNAUTHORIZED: Final = Exit.kong_error(401, "Unauthorized")
_FORBIDDEN: Final = Exit.kong_error(403, "You cannot consume this service")
_AUTH_CACHE_MAX: Final = 4096
"""Verdicts remembered per instance for distinct authenticated-group lists (certificate CNs are not bounded)."""

HeaderMap = dict[str, tuple[str, str | None]]


class Decision:
    """The verdict for one list of groups: ``exit`` to refuse, or the upstream header changes to apply."""

    __slots__ = ("exit", "headers")

    def __init__(self, exit: Exit | None, headers: HeaderMap) -> None:
        self.exit = exit
        self.headers = headers

    def apply(self, ctx: PluginContext) -> Exit | None:
        if self.exit is not None:
            return self.exit
        ctx.upstream_headers.update(self.headers)
        return None

    def __repr__(self) -> str:
        return f"Decision(exit={self.exit!r}, headers={self.headers})"


def _wire(text: str) -> str:
    """A header value as nginx would send it: UTF-8 held as latin-1 text (as the proxy writes heads), CR/LF/NUL - a
    group name or a certificate CN could carry them - replaced by spaces."""
    if "\r" in text or "\n" in text or "\0" in text:
        text = text.replace("\r", " ").replace("\n", " ").replace("\0", " ")
    return text.encode("utf-8").decode("latin-1")


def consumer_groups(build: BuildContext) -> dict[str, tuple[str, ...]]:
    """Consumer id -> its group names in the store's order (acl ids), built once per snapshot (Kong: ``groups.lua``
    loads them per consumer into its cache)."""

    def index() -> dict[str, tuple[str, ...]]:
        found: dict[str, list[str]] = {}
        for row in build.config.get("acls", []):
            consumer_id = foreign_id(row.get("consumer"))
            group = row.get("group")
            if consumer_id is not None and isinstance(group, str):
                found.setdefault(consumer_id, []).append(group)
        return {consumer_id: tuple(groups) for consumer_id, groups in found.items()}

    groups: dict[str, tuple[str, ...]] = build.memo("acl:groups", index)
    return groups


def _current_consumer_id(ctx: PluginContext) -> str | None:
    """Kong's ``get_current_consumer_id``: the consumer's id, else the credential's consumer."""
    consumer = ctx.consumer
    if consumer is not None:
        return foreign_id(consumer.get("id"))
    credential = ctx.credential
    if credential is None:
        return None
    return foreign_id(credential.get("consumer")) or foreign_id(credential.get("consumer_id"))


@register_handler
class Acl(Plugin):
    """One compiled acl instance (see the module docstring)."""

    NAME = NAME
    PRIORITY = PRIORITY
    NO_CONSUMER = True

    __slots__ = ("_by_authenticated", "_by_consumer", "always_use_authenticated", "deny", "groups", "hide", "listed")

    def __init__(self, row: Mapping[str, Any], build: BuildContext) -> None:
        super().__init__(row)
        config: Mapping[str, Any] = row.get("config") or {}
        deny = [g for g in config.get("deny") or () if isinstance(g, str)]
        self.deny = bool(deny)  # Kong: the deny list when it has an element, else the allow list
        self.listed: tuple[str, ...] = tuple(deny or (g for g in config.get("allow") or () if isinstance(g, str)))
        self.hide = bool(config.get("hide_groups_header"))
        self.always_use_authenticated = bool(config.get("always_use_authenticated_groups"))
        self.groups = consumer_groups(build)
        self._by_consumer: dict[str, Decision] = {}
        self._by_authenticated: dict[tuple[str, ...], Decision] = {}

    @classmethod
    def compile(cls, row: Mapping[str, Any], build: BuildContext) -> Acl:
        return cls(row, build)

    # ================================================================== access (traffic flow)
    def access(self, ctx: PluginContext) -> Exit | None:
        consumer_id = _current_consumer_id(ctx)
        authenticated = ctx.authenticated_groups
        if consumer_id is None:
            if authenticated is None:
                return _FORBIDDEN if ctx.credential is not None else _UNAUTHORIZED
            return self._for_authenticated(authenticated).apply(ctx)
        if authenticated is not None and (ctx.credential is None or self.always_use_authenticated):
            return self._for_authenticated(authenticated).apply(ctx)
        decision = self._by_consumer.get(consumer_id)
        if decision is None:
            groups = self.groups.get(consumer_id)
            if not groups and not self.deny:
                return _FORBIDDEN if ctx.credential is not None else _UNAUTHORIZED
            decision = self._by_consumer[consumer_id] = self.decide(groups or (), H_CONSUMER_GROUPS)
        return decision.apply(ctx)

    def _for_authenticated(self, groups: tuple[str, ...]) -> Decision:
        decision = self._by_authenticated.get(groups)
        if decision is None:
            decision = self.decide(groups, H_AUTHENTICATED_GROUPS)
            if len(self._by_authenticated) < _AUTH_CACHE_MAX:
                self._by_authenticated[groups] = decision
        return decision

    def decide(self, groups: Sequence[str], header: str) -> Decision:
        """Kong's ``get_to_be_blocked``: refused, or the groups joined for ``header`` (the other one cleared)."""
        member = set(groups)
        in_group = any(name in member for name in self.listed)
        if in_group if self.deny else not in_group:
            return Decision(_FORBIDDEN, {})
        value = None if self.hide else _wire(", ".join(groups))
        other = H_AUTHENTICATED_GROUPS if header == H_CONSUMER_GROUPS else H_CONSUMER_GROUPS
        # Kong sets an empty list as "", which nginx turns into removing the header
        return Decision(None, {header.lower(): (header, value or None), other.lower(): (other, None)})
