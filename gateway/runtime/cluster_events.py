"""Events from the other nodes sharing the database (Kong's cluster events), applied in this node.

Only one kind exists: health forced through another node's Admin API (``POST .../targets/{t}/unhealthy``,
Kong's ``balancer:post_health``), forced here too, on the health registry, which pushes it to this node's workers
as for a local Admin API call. The store's watcher thread hears the event (``Database.on_event``); the work hops
onto the event loop, where the registry lives. An event this node cannot apply (an upstream it has no balancer for
yet) is logged at ``error``, as Kong's handler does.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from gateway.admin.health import POST_HEALTH

if TYPE_CHECKING:
    from gateway.observability.errorlog import ErrorLog
    from gateway.store.interface import Store
    from gateway.upstream.healthcheck import HealthRegistry

__all__ = ["follow"]


def follow(db: Store, loop: asyncio.AbstractEventLoop, health: HealthRegistry, error_log: ErrorLog) -> None:
    """Subscribe ``health`` (a ``HealthRegistry``) to the events ``db`` hears from other nodes."""

    def apply(event: str, data: dict[str, object]) -> None:
        if event != POST_HEALTH:
            return
        ip = data.get("ip")
        try:
            error = health.post_health(
                str(data["upstream"]),
                str(data["hostname"]),
                int(str(data["port"])),
                ip if isinstance(ip, str) else None,
                bool(data["healthy"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            error = f"malformed event: {exc!r}"
        if error is not None:
            error_log.error(f"[cluster_events] could not apply health forced on another node: {error}")

    def heard(event: str, data: dict[str, object]) -> None:  # the watcher's thread
        try:
            loop.call_soon_threadsafe(apply, event, data)
        except RuntimeError:  # the loop closed: the node is stopping
            pass

    db.on_event(heard)
