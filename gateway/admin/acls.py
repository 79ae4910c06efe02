"""``/consumers/{c}/acls/{id or group}`` (Kong OSS ``kong/plugins/acl/api.lua``): an acl addressed by its group.

Kong's ``before`` hook runs ahead of the generated nested-entity handlers: a segment that is not a uuid is a group
name, looked up among the consumer's acls (a missing consumer or group is 404 ``Not found``, except that ``PUT``
creates the group under a new id). ``PUT`` without a ``group`` in the body takes it from the path, so
``PUT /consumers/bob/acls/pro`` with an empty body creates (or keeps) bob's ``pro`` group. Top-level ``/acls/{id}``
takes ids only (acls have no endpoint key).
"""

from __future__ import annotations

from urllib.parse import quote
from uuid import uuid4

from gateway.admin.bodies import unescape_segment
from gateway.admin.catalog import by_name
from gateway.admin.context import Context
from gateway.admin.endpoints import Handler, error_response, is_uuid, nested_entity_handlers
from gateway.admin.http import Response, message
from gateway.entities.errors import EntityError
from gateway.store.interface import Store

__all__ = ["acl_routes"]

ACLS = by_name("acls")
CONSUMERS = by_name("consumers")
_SCAN = 1000


def _find_group(db: Store, consumer_id: str, group: str) -> str | None:
    """The id of the consumer's acl for ``group`` (Kong: ``select_by_cache_key``), or None."""
    dao = db.dao(ACLS.name)
    offset: str | None = None
    while True:
        rows, offset = dao.page(_SCAN, offset, {"consumer": consumer_id})
        for row in rows:
            if row.get("group") == group:
                return str(row["id"])
        if offset is None:
            return None


def _by_group(handler: Handler, method: str) -> Handler:
    """Run ``handler`` with a group-name segment replaced by the acl's id (or a new id for ``PUT``)."""

    async def wrapped(ctx: Context) -> Response:
        group = unescape_segment(ctx.params[ACLS.name])
        if is_uuid(group):
            return await handler(ctx)
        consumer_key = unescape_segment(ctx.params[CONSUMERS.name])

        def op(db: Store) -> str | None:
            consumer = db.dao(CONSUMERS.name).select(consumer_key)
            return None if consumer is None else _find_group(db, str(consumer["id"]), group) or ""

        try:
            acl_id = await ctx.run(op)
        except EntityError as err:
            return error_response(err)
        if acl_id is None or (acl_id == "" and method != "PUT"):
            return message(404, "Not found")  # no such consumer, or no such group outside a PUT
        acl_id = acl_id or str(uuid4())
        if method == "PUT":
            data = ctx.post(ACLS.name)
            data.setdefault("group", group)
            ctx.set_post(data)
        ctx.params[ACLS.name] = quote(acl_id, safe="")
        return await handler(ctx)

    return wrapped


def acl_routes() -> dict[str, dict[str, Handler]]:
    """The nested acl item endpoints, with Kong's group-name addressing in front of the generated handlers."""
    generated = nested_entity_handlers(CONSUMERS, ACLS, "consumer")
    item = f"/{CONSUMERS.path}/:{CONSUMERS.name}/{ACLS.nested_path}/:{ACLS.name}"
    return {item: {method: _by_group(handler, method) for method, handler in generated.items()}}
