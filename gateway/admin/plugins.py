"""Plugin PATCH (``kong/api/routes/plugins.lua``): a form body can only be typed once the plugin's
``name`` is known (its ``config`` schema depends on it), so a PATCH without ``name`` first reads the
plugin (404 ``Not found`` when it is missing) and patches with its name added.
"""

from __future__ import annotations

from gateway.admin.bodies import unescape_segment
from gateway.admin.catalog import by_name
from gateway.admin.context import Context
from gateway.admin.endpoints import Handler, error_response
from gateway.admin.http import Response, message
from gateway.entities.errors import EntityError
from gateway.store.interface import Store

__all__ = ["with_plugin_name"]

PLUGINS = by_name("plugins")


def with_plugin_name(patch: Handler) -> Handler:
    """Wrap a PATCH handler of ``/plugins/{p}`` or ``/<parent>/{x}/plugins/{p}``."""

    async def handler(ctx: Context) -> Response:
        data = dict(ctx.args.post)
        if data.get("name") is None:
            key = unescape_segment(ctx.params[PLUGINS.name])

            def op(db: Store) -> str | None:
                row = db.dao(PLUGINS.name).select(key)
                return None if row is None else str(row.get("name"))

            try:
                name = await ctx.run(op)
            except EntityError as err:
                return error_response(err)
            if name is None:
                return message(404, "Not found")
            data["name"] = name
        ctx.set_post(ctx.coerce(PLUGINS.name, data) if ctx.args.is_form else data)
        return await patch(ctx)

    return handler
