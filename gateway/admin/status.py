"""The Status API (``status_listen``; Kong's ``kong/status/init.lua``) and ``GET /metrics`` for both APIs.

The Status API is a read-only HTTP server for monitoring, served by the master next to the Admin API with the same
request machinery (``AdminApp``: h11 server, Kong's 404/405 bodies, limits and timeouts) but only these routes:

- ``GET /status``: the same document as the Admin API's (``kong/api/routes/health.lua``);
- ``GET /status/ready`` (``kong/status/ready.lua``): 200 ``{"message":"ready"}`` once the node can proxy, else 503
  with Kong's reason: ``failed to connect to database``; in DB-less mode ``router builds not yet complete, router
  ready in <n> of <N> workers`` until every worker process has loaded its first configuration snapshot, then ``no
  configuration available (empty configuration present)`` while the configuration holds no entity; with a
  database ``router builds not yet complete`` until the first snapshot is live in a process serving traffic.
  ``POST /status/ready`` with ``status=draining`` answers 204 and from then on ``GET`` answers 503
  ``{"message":"draining"}`` (Kong 3.9's drain, for load balancers to take the node out); any other body 400;
- ``GET /metrics`` when the ``prometheus`` plugin is enabled (the ``plugins`` setting), as Kong loads its
  ``status_api.lua``; the Admin API gets the same route (its ``api.lua``).

Readiness is a rule over facts the runtime reports (``Readiness``), kept as a function (``ready_state``) so that
each of Kong's answers is reachable in a unit test.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.admin.app import AdminApp
from gateway.admin.context import Context
from gateway.admin.endpoints import Handler
from gateway.admin.http import Response, message
from gateway.admin.info import info_routes
from gateway.admin.metrics import metrics_routes
from gateway.admin.router import Router
from gateway.observability.accesslog import AccessLog

if TYPE_CHECKING:
    from gateway.settings import Listener

__all__ = [
    "Readiness",
    "StatusApp",
    "ready_state",
    "status_listener",
]

EMPTY_CONFIG_HASH = "0" * 32
"""Kong's ``DECLARATIVE_EMPTY_CONFIG_HASH``: what ``/status`` reports for a configuration without entities."""


@dataclass(slots=True)
class Readiness:
    """The facts ``/status/ready`` decides on, for one request.

    Attributes:
        db_reachable: the store answered.
        dbless: ``database = off``.
        routers_ready: processes serving traffic that have loaded their first snapshot (Kong's router builds).
        workers: how many such processes there are meant to be (``worker_processes``).
        config_hash: the loaded configuration's hash (DB-less; ``EMPTY_CONFIG_HASH`` when it holds nothing).
        draining: ``POST /status/ready`` set ``status=draining``.
    """

    db_reachable: bool
    dbless: bool
    routers_ready: int
    workers: int
    config_hash: str | None = None
    draining: bool = False


def ready_state(facts: Readiness) -> tuple[int, str]:
    """Kong's ``/status/ready`` answer (status, message) for ``facts``, in Kong's order of checks."""
    if facts.draining:
        return 503, "draining"
    if not facts.db_reachable:
        return 503, "failed to connect to database"
    if facts.dbless:
        if facts.routers_ready < facts.workers:
            return 503, (
                f"router builds not yet complete, router ready in {facts.routers_ready} of {facts.workers} workers"
            )
        if not facts.config_hash:
            return 503, "no configuration available (configuration hash is not initialized)"
        if facts.config_hash == EMPTY_CONFIG_HASH:
            return 503, "no configuration available (empty configuration present)"
        return 200, "ready"
    if facts.routers_ready == 0:
        return 503, "router builds not yet complete"
    return 200, "ready"


class StatusApp(AdminApp):
    """The Status API: the Admin API's request machinery with the status routes only, sharing its node facts.

    Args:
        admin: the node's Admin API (its store, settings, error log, node information and configuration hash).
        routers_ready: ``() -> (ready, total)``: processes serving traffic with their first snapshot loaded.
        metrics: the ``/metrics`` scrape, or None when the prometheus plugin is not enabled.
        access_log: Kong's ``status_access_log`` is ``off`` by default: a disabled log unless given.
    """

    def __init__(  # not super().__init__: it would build the Admin API's routes; the attributes are set here
        self,
        admin: AdminApp,
        routers_ready: Callable[[], tuple[int, int]],
        metrics: Callable[[], Awaitable[bytes]] | None = None,
        access_log: AccessLog | None = None,
    ) -> None:
        self.db = admin.db
        self.settings = admin.settings
        self.error_log = admin.error_log
        self.access_log = access_log if access_log is not None else AccessLog(None, with_request_id=False)
        self.config_state = admin.config_state
        self.settle = None
        self.node = admin.node
        self.coerce = admin.coerce
        self.server_header, self.latency_header = admin.server_header, admin.latency_header
        self.metrics = metrics
        self.routers_ready = routers_ready
        self.draining = False
        self._connections = itertools.count(1)
        self.router = self._status_router()

    def _status_router(self) -> Router:
        router = Router()
        routes: dict[str, dict[str, Handler]] = {
            "/status": info_routes(self.node, router.patterns)["/status"],
            "/status/ready": {"GET": self._ready_get, "POST": self._ready_post},
        }
        if self.metrics is not None:
            routes.update(metrics_routes(self.metrics))
        for pattern, methods in routes.items():
            for method, handler in methods.items():
                router.add(pattern, method, handler)
        return router

    async def facts(self, ctx: Context) -> Readiness:
        reachable = True
        try:
            await ctx.run(lambda db: db.ping())
        except Exception:  # any store failure is "not reachable", as Kong's connect() check
            reachable = False
        ready, total = self.routers_ready()
        config_hash = self.node.config_hash() if ctx.dbless else None
        return Readiness(reachable, ctx.dbless, ready, total, config_hash, self.draining)

    async def _ready_get(self, ctx: Context) -> Response:
        facts = await self.facts(ctx)
        status, text = ready_state(facts)
        if status != 200:
            self.error_log.notice(f"not ready for proxying: {text}")
        else:
            self.error_log.debug("ready for proxying")
        return message(status, text)

    async def _ready_post(self, ctx: Context) -> Response:
        params = dict(ctx.args.uri)
        params.update(ctx.args.post)
        if params.get("status") == "draining":
            self.draining = True
            return Response(204, b"")
        return Response(400, b"")


def status_listener(listener: Listener) -> Listener:
    """The listener the master binds for a ``status_listen`` entry: ``reuseport`` (in Kong's default, for nginx's
    workers) is dropped, since one process serves the Status API and a ``SO_REUSEPORT`` bind would let a second
    gateway share the port silently instead of failing to start."""
    return dataclasses.replace(listener, reuseport=False)
