"""``GET /consumers?custom_id=x`` (``kong/api/routes/consumers.lua``): a lookup, not a filter.

``custom_id`` must be a non-empty string (``?custom_id`` alone or ``?custom_id=`` -> 400); the answer is
``{"data":[consumer],"next":null}`` or ``{"data":[],"next":null}``. Without ``custom_id`` the normal
paged collection is served.
"""

from __future__ import annotations

from gateway.admin.catalog import by_name
from gateway.admin.context import Context
from gateway.admin.endpoints import Handler, collection_get, run_op
from gateway.admin.http import Response, json_response, message
from gateway.store.interface import Row, Store

__all__ = ["consumers_get"]

CONSUMERS = by_name("consumers")
_SCAN = 1000


def _by_custom_id(db: Store, custom_id: str) -> Row | None:
    dao = db.dao(CONSUMERS.name)
    offset: str | None = None
    while True:
        rows, offset = dao.page(_SCAN, offset, None)
        for row in rows:
            if row.get("custom_id") == custom_id:
                return row
        if offset is None:
            return None


def consumers_get() -> Handler:
    paged = collection_get(CONSUMERS)

    async def handler(ctx: Context) -> Response:
        if "custom_id" not in ctx.args.uri:
            return await paged(ctx)
        custom_id = ctx.args.uri["custom_id"]
        if not isinstance(custom_id, str) or custom_id == "":
            return message(400, "custom_id must be an unempty string")

        def op(db: Store) -> Response:
            row = _by_custom_id(db, custom_id)
            return json_response(200, {"data": [row] if row is not None else [], "next": None})

        return await run_op(ctx, op)

    return handler
