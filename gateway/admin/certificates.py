"""``/certificates`` special cases (``kong/api/routes/certificates.lua``).

- A certificate can be addressed by one of its SNI names: ``/certificates/example.com``. An unknown name
  answers 404 ``{"message":"SNI not found"}``, except on PUT, which creates a certificate with a new id
  and adds the name from the URL to its ``snis``.
- PUT without ``snis`` means ``snis = null`` (all SNIs removed); PATCH without ``snis`` keeps them.
- A single form value ``snis=a`` is a one-element list.
- ``GET /certificates/{id}`` returns the row with its sorted ``snis`` list (the store's certificates DAO
  always does). Nested ``/certificates/{c}/snis`` paths resolve ``{c}`` the same way, and their ``next``
  link names the certificate by id, as Kong's does after this rewrite.
"""

from __future__ import annotations

import uuid
from typing import Any

from gateway.admin.bodies import unescape_segment
from gateway.admin.catalog import EntitySpec, by_name
from gateway.admin.context import Context
from gateway.admin.endpoints import (
    Handler,
    entity_delete,
    entity_get,
    entity_patch,
    entity_put,
    error_response,
    is_uuid,
    nested_collection_get,
    nested_collection_post,
    nested_entity_handlers,
)
from gateway.admin.http import Response, message
from gateway.entities.errors import EntityError
from gateway.store.interface import Store

__all__ = ["certificate_routes"]

CERTS = by_name("certificates")
SNIS = by_name("snis")


class _SniNotFound(Exception):
    """The URL names an SNI that does not exist (and the method is not PUT)."""


async def _prepare(ctx: Context) -> str | None:
    """Rewrite ``:certificates`` to an id; returns the SNI name used in the URL, if any."""
    raw = unescape_segment(ctx.params[CERTS.name])
    if is_uuid(raw):
        return None
    method = ctx.method

    def op(db: Store) -> str | None:
        sni = db.dao(SNIS.name).select(raw)
        if sni is not None and isinstance(sni.get("certificate"), dict):
            return str(sni["certificate"]["id"])
        return str(uuid.uuid4()) if method == "PUT" else None

    cert_id = await ctx.run(op)
    if cert_id is None:
        raise _SniNotFound(raw)
    ctx.params[CERTS.name] = cert_id
    return raw


def _snis_arg(ctx: Context, name: str | None) -> None:
    """``prepare_args``: the ``snis`` of a PUT/PATCH body, with the URL's SNI added on PUT."""
    post = ctx.post(CERTS.name)
    form = ctx.args.is_form
    snis: Any = post.get("snis")
    put = ctx.method == "PUT"
    if isinstance(snis, list):
        if form:
            snis = [None if s == "" else s for s in snis]
        if name is not None and put and name not in snis:
            snis = [*snis, name]
    elif isinstance(snis, str) and not (form and snis == ""):
        snis = [snis, name] if name is not None and put and name != snis else [snis]
    elif isinstance(snis, str):
        snis = None
    if snis is None and put:
        post["snis"] = None
    elif "snis" in post or snis is not None:
        post["snis"] = snis
    ctx.set_post(post)


def _with_prepare(handler: Handler, rewrite_snis: bool = False) -> Handler:
    async def wrapped(ctx: Context) -> Response:
        try:
            name = await _prepare(ctx)
        except _SniNotFound:
            return message(404, "SNI not found")
        except EntityError as err:
            return error_response(err)
        if rewrite_snis:
            _snis_arg(ctx, name)
        return await handler(ctx)

    return wrapped


def certificate_routes() -> dict[str, dict[str, Handler]]:
    """Pattern -> method -> handler for the paths Kong customises."""
    item = f"/{CERTS.path}/:{CERTS.name}"
    nested = f"{item}/{SNIS.nested_path}"
    nested_item = f"{nested}/:{SNIS.name}"
    spec: EntitySpec = CERTS
    routes: dict[str, dict[str, Handler]] = {
        item: {
            "GET": _with_prepare(entity_get(spec)),
            "PUT": _with_prepare(entity_put(spec), rewrite_snis=True),
            "PATCH": _with_prepare(entity_patch(spec), rewrite_snis=True),
            "DELETE": _with_prepare(entity_delete(spec)),
        },
        nested: {
            "GET": _with_prepare(nested_collection_get(SNIS, CERTS, "certificate")),
            "POST": _with_prepare(nested_collection_post(SNIS, CERTS, "certificate")),
        },
        nested_item: {
            method: _with_prepare(h) for method, h in nested_entity_handlers(CERTS, SNIS, "certificate").items()
        },
    }
    return routes
