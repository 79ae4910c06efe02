"""Upstream health endpoints (``kong/api/routes/upstreams.lua``, ``kong/db/dao/targets.lua``).

- ``GET /upstreams/{u}/health``: the upstream's targets, newest first (Kong's ``page_for_upstream``), each with
  ``health`` - ``HEALTHY`` if any of its addresses is, else ``UNHEALTHY`` if any is, else ``HEALTHCHECKS_OFF``
  (health checks disabled, or weight 0); ``DNS_ERROR`` when its name resolved to nothing - and ``data`` (the
  balancer's view: ``host``, ``port``, ``dns``, ``nodeWeight``, ``weight``, ``addresses[]``). The body also has
  ``next`` and the node's ``node_id``. ``?balancer_health=1`` answers the balancer's own health instead.
- ``PUT``/``POST /upstreams/{u}/targets/{t}/healthy|unhealthy``, and ``.../{t}/{address}/healthy|unhealthy`` for
  one address of a name target: force the health (counters cleared) -> 204; 404 for an unknown upstream or target,
  400 ``no healthchecker found for <name>`` when the upstream does not use health checks.

The store is read on its worker thread (``ctx.run``); the health registry lives on the event loop, where the
handler coroutine runs.
"""

from __future__ import annotations

from typing import Any, Protocol

from gateway.admin.bodies import unescape_segment
from gateway.admin.catalog import by_name
from gateway.admin.context import Context
from gateway.admin.endpoints import Handler, not_found, run_op
from gateway.admin.http import Response, json_response, message
from gateway.admin.pagination import page_size
from gateway.admin.upstreams import _find_target
from gateway.entities.targets import DEFAULT_PORT
from gateway.store.interface import Row, Store

POST_HEALTH = "balancer:post_health"
"""The event other nodes receive for health forced here (Kong's cluster event of that name)."""

__all__ = ["HealthView", "health_routes"]

UPSTREAMS = by_name("upstreams")
TARGETS = by_name("targets")
_SCAN = 1000


class HealthView(Protocol):
    """What the endpoints need of ``gateway.upstream.healthcheck.HealthRegistry``."""

    def upstream_health(self, upstream_id: str) -> dict[str, dict[str, Any]] | None: ...

    def balancer_health(self, upstream_id: str) -> dict[str, Any] | None: ...

    def post_health(self, upstream_id: str, name: str, port: int, ip: str | None, healthy: bool) -> str | None: ...


def _all_targets(db: Store, upstream_id: str) -> list[Row]:
    dao = db.dao(TARGETS.name)
    rows: list[Row] = []
    offset: str | None = None
    while True:
        page, offset = dao.page(_SCAN, offset, {"upstream": upstream_id})
        rows.extend(page)
        if offset is None:
            return rows


def _split(value: str) -> tuple[str, int | None]:
    """``host:port`` / ``[v6]:port`` / ``host`` -> (host as the balancer names it, port or None)."""
    if value.startswith("["):
        end = value.find("]")
        host, rest = value[1:end], value[end + 1 :]
        return host, int(rest[1:]) if rest[1:].isdigit() else None
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        return host, int(port) if port.isdigit() else None
    return value, None


def _with_health(target: Row, info: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    row = dict(target)
    if info is None:
        return row
    data = info.get(str(target.get("target")))
    if data is not None and data["addresses"]:
        health = "HEALTHCHECKS_OFF"
        for address in data["addresses"]:
            if address["health"] == "HEALTHY":
                health = "HEALTHY"
                break
            if address["health"] == "UNHEALTHY":
                health = "UNHEALTHY"
        row["health"] = health
    else:
        row["health"] = "DNS_ERROR"
    row["data"] = data
    return row


def _health_get(node_id: str, registry: HealthView | None) -> Handler:
    async def handler(ctx: Context) -> Response:
        raw = ctx.params[UPSTREAMS.name]
        args = ctx.args.uri
        size = page_size(args)
        offset_raw = args.get("offset")
        offset = int(offset_raw) if isinstance(offset_raw, str) and offset_raw.isdigit() else 0

        found: list[tuple[Row, list[Row]]] = []

        def op(db: Store) -> Response:
            upstream = db.dao(UPSTREAMS.name).select(unescape_segment(raw))
            if upstream is None:
                raise not_found()
            found.append((upstream, _all_targets(db, str(upstream["id"]))))
            return json_response(204)

        answered = await run_op(ctx, op)
        if not found:
            return answered  # 404, or the store's error, answered like every endpoint
        upstream, targets = found[0]
        upstream_id = str(upstream["id"])
        if str(args.get("balancer_health")) == "1":
            data = registry.balancer_health(upstream_id) if registry is not None else None
            return json_response(200, {"data": data, "next": None, "node_id": node_id})
        targets.sort(key=lambda r: (r.get("created_at") or 0, str(r.get("id") or "")), reverse=True)
        page = targets[offset : offset + size]
        info = registry.upstream_health(upstream_id) if registry is not None else None
        body: dict[str, Any] = {"data": [_with_health(t, info) for t in page]}
        if offset + size < len(targets):
            body["offset"] = str(offset + size)
            body["next"] = f"/upstreams/{raw}/health?offset={offset + size}"
        else:
            body["next"] = None
        body["node_id"] = node_id
        return json_response(200, body)

    return handler


def _set_health(registry: HealthView | None, healthy: bool, with_address: bool) -> Handler:
    async def handler(ctx: Context) -> Response:
        upstream_key = unescape_segment(ctx.params[UPSTREAMS.name])
        target_key = unescape_segment(ctx.params[TARGETS.name])
        address = unescape_segment(ctx.params["address"]) if with_address else None

        def op(db: Store) -> tuple[Row | None, Row | None]:
            upstream = db.dao(UPSTREAMS.name).select(upstream_key)
            if upstream is None:
                return None, None
            return upstream, _find_target(db, upstream, target_key)

        upstream, target = await ctx.run(op)
        if upstream is None or target is None:
            return message(404, "Not found")
        hostname, target_port = _split(str(target["target"]))
        if address is not None:
            ip, port = _split(address)
            port = port if port is not None else DEFAULT_PORT
        else:
            ip, port = None, target_port if target_port is not None else DEFAULT_PORT
        if registry is None:
            return message(400, f"Upstream {upstream['name']} has no balancer")
        error = registry.post_health(str(upstream["id"]), hostname, port, ip, healthy)
        if error is not None:
            return message(400, error)
        # Kong's ``cluster_events:broadcast("balancer:post_health", ...)``: the other nodes sharing the database
        forced = {"upstream": str(upstream["id"]), "hostname": hostname, "port": port, "ip": ip, "healthy": healthy}
        await ctx.run(lambda db: db.broadcast(POST_HEALTH, forced))
        return json_response(204)

    return handler


def health_routes(node_id: str, registry: HealthView | None) -> dict[str, dict[str, Handler]]:
    base = f"/{UPSTREAMS.path}/:{UPSTREAMS.name}"
    target = f"{base}/{TARGETS.nested_path}/:{TARGETS.name}"
    routes: dict[str, dict[str, Handler]] = {f"{base}/health": {"GET": _health_get(node_id, registry)}}
    for word, healthy in (("healthy", True), ("unhealthy", False)):
        one = _set_health(registry, healthy, with_address=False)
        routes[f"{target}/{word}"] = {"PUT": one, "POST": one}
        by_address = _set_health(registry, healthy, with_address=True)
        routes[f"{target}/:address/{word}"] = {"PUT": by_address, "POST": by_address}
    return routes
