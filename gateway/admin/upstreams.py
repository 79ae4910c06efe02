"""``/upstreams/{u}/targets/...`` (``kong/api/routes/upstreams.lua``, ``targets.lua``).

Targets have no top-level endpoints (``/targets`` and ``/targets/{t}`` answer 404). Within an upstream a
target is addressed by id or by its ``target`` string (``/upstreams/u/targets/10.0.0.1:80``); PUT and
PATCH both update an existing target (Kong maps both to ``update``), DELETE answers 204, and a target of
another upstream is 404.
"""

from __future__ import annotations

from gateway.admin.bodies import unescape_segment
from gateway.admin.catalog import by_name
from gateway.admin.context import Context
from gateway.admin.endpoints import Handler, not_found, run_op, unsupported, update_row
from gateway.admin.http import Response, json_response
from gateway.admin.pagination import collection_body, next_link, page_size
from gateway.store.interface import Row, Store

__all__ = ["target_routes"]

UPSTREAMS = by_name("upstreams")
TARGETS = by_name("targets")
_SCAN = 1000


def _find_target(db: Store, upstream: Row, key: str) -> Row | None:
    """By id, or the upstream's target whose ``target`` string equals ``key`` (default port applied)."""
    return db.select_target(upstream["id"], key)


def _target_op(action: str) -> Handler:
    async def handler(ctx: Context) -> Response:
        upstream_key = unescape_segment(ctx.params[UPSTREAMS.name])
        target_key = unescape_segment(ctx.params[TARGETS.name])
        data = ctx.post(TARGETS.name) if action == "update" else {}

        def op(db: Store) -> Response:
            upstream = db.dao(UPSTREAMS.name).select(upstream_key)
            if upstream is None:
                raise not_found()
            target = _find_target(db, upstream, target_key)
            if target is None:
                raise not_found()
            if action == "get":
                return json_response(200, target)
            if action == "update":
                return json_response(200, update_row(db, TARGETS, target["id"], data, ctx.dbless))
            if ctx.dbless:
                raise unsupported(TARGETS, "delete")
            db.dao(TARGETS.name).delete(target["id"])
            return json_response(204)

        return await run_op(ctx, op)

    return handler


async def _all_targets(ctx: Context) -> Response:
    """``/upstreams/{u}/targets/all``: every target, paged, ``next`` without ``size`` as in Kong."""
    raw = ctx.params[UPSTREAMS.name]
    args = ctx.args.uri

    def op(db: Store) -> Response:
        upstream = db.dao(UPSTREAMS.name).select(unescape_segment(raw))
        if upstream is None:
            raise not_found()
        offset = args.get("offset") if isinstance(args.get("offset"), str) else None
        rows, next_offset = db.dao(TARGETS.name).page(page_size(args), offset, {"upstream": upstream["id"]})
        link = next_link(f"/{UPSTREAMS.path}/{raw}/targets/all", next_offset, None)
        return json_response(200, collection_body(rows, next_offset, link))

    return await run_op(ctx, op)


def target_routes() -> dict[str, dict[str, Handler]]:
    item = f"/{UPSTREAMS.path}/:{UPSTREAMS.name}/{TARGETS.nested_path}/:{TARGETS.name}"
    return {
        item: {
            "GET": _target_op("get"),
            "PUT": _target_op("update"),
            "PATCH": _target_op("update"),
            "DELETE": _target_op("delete"),
        },
        f"/{UPSTREAMS.path}/:{UPSTREAMS.name}/{TARGETS.nested_path}/all": {"GET": _all_targets},
    }
