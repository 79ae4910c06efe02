"""Kong's generated CRUD endpoints (``kong/api/endpoints.lua``), one function per endpoint kind.

For an entity ``E`` with a foreign key ``E.f -> P`` Kong serves::

    /E                 GET (page)  POST (insert, 201)
    /E/:E              GET  PUT (upsert, 200)  PATCH (update, 200)  DELETE (204, even when absent)
    /E/:E/f            the P an E points at: GET PUT PATCH; DELETE -> 405 when it is set
    /P/:P/E            GET (page of E with f = P)  POST (insert with f = P)
    /P/:P/E/:E         the E, checked to belong to P: GET PUT PATCH DELETE

Each handler does all its store work in one ``ctx.run`` (see ``context.py``). Store errors are
``EntityError`` values rendered by ``error_response`` with Kong's status rules. In DB-less mode every write
answers 405 with ``cannot <op> '<entity>' entities when not using a database`` (Kong's ``off`` strategy),
after the reads that Kong performs first (a missing parent is still a 404).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.admin.bodies import unescape_segment
from gateway.admin.catalog import EntitySpec, by_name
from gateway.admin.context import Context
from gateway.admin.http import Response, json_response, message
from gateway.admin.pagination import collection_body, next_link, page_size, tag_filter
from gateway.entities.errors import Code, EntityError, NotFound, operation_unsupported
from gateway.store.interface import Row, Store

__all__ = [
    "Handler",
    "collection_get",
    "collection_post",
    "entity_delete",
    "entity_get",
    "entity_patch",
    "entity_put",
    "error_response",
    "foreign_entity_handlers",
    "is_uuid",
    "nested_collection_get",
    "nested_collection_post",
    "nested_entity_handlers",
    "not_found_error",
    "unsupported",
]

Handler = Callable[[Context], Awaitable[Response]]

_OPS = {"insert": "create", "update": "update", "upsert": "create or update", "delete": "remove"}


def is_uuid(value: str) -> bool:
    """Kong's ``uuid.is_valid_uuid``: the 8-4-4-4-12 hex form."""
    if len(value) != 36:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _pretty_key(key: dict[str, Any]) -> str:
    inner = ",".join(f'{k}="{v}"' if isinstance(v, str) else f"{k}={v}" for k, v in key.items())
    return "{" + inner + "}"


def not_found_error(spec: EntitySpec, key: str) -> EntityError:
    """The DAO's code-6 error for an update of a missing entity (by primary key or endpoint key)."""
    if not is_uuid(key) and spec.endpoint_key:
        field = {spec.endpoint_key: key}
        return EntityError(Code.NOT_FOUND, f"could not find the entity with '{_pretty_key(field)}'", field, 404)
    pk = {"id": key}
    return EntityError(Code.NOT_FOUND, f"could not find the entity with primary key '{_pretty_key(pk)}'", pk, 404)


def unsupported(spec: EntitySpec, op: str, key: str | None = None) -> EntityError:
    """The ``off`` strategy's refusal, worded by operation and by how the entity was addressed."""
    verb = _OPS[op]
    if key is not None and not is_uuid(key) and spec.endpoint_key:
        text = f"cannot {verb} '{spec.name}' entities by '{spec.endpoint_key}' when not using a database"
    else:
        text = f"cannot {verb} '{spec.name}' entities when not using a database"
    return operation_unsupported(text)


def error_response(err: EntityError) -> Response:
    """``endpoints.handle_error``: the error table as body, except 405/500 which get Kong's fixed text."""
    if isinstance(err, NotFound):
        return json_response(404, err.to_json())
    status = err.http_status
    if err.code == Code.OPERATION_UNSUPPORTED:
        return json_response(status, err.to_json())
    if status == 405:
        return message(405, "Method not allowed")
    if status >= 500:
        return message(500, "An unexpected error occurred")
    return json_response(status, err.to_json())


class _Exit(Exception):
    """A response decided inside a store function (404s on the way); carried out of ``ctx.run``."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def _not_found() -> _Exit:
    return _Exit(message(404, "Not found"))


async def _run(ctx: Context, fn: Callable[[Store], Response]) -> Response:
    try:
        return await ctx.run(fn)
    except _Exit as exit_:
        return exit_.response
    except EntityError as err:
        return error_response(err)


def _key(ctx: Context, spec: EntitySpec) -> str:
    return unescape_segment(ctx.params[spec.name])


def _select(db: Store, spec: EntitySpec, key: str) -> Row | None:
    return db.dao(spec.name).select(key)


def _fk_id(row: Row, field: str) -> str | None:
    ref = row.get(field)
    if isinstance(ref, dict):
        value = ref.get("id")
        return value if isinstance(value, str) else None
    return None


# --------------------------------------------------------------------------------------------- collections
def _page(
    db: Store, spec: EntitySpec, args: dict[str, Any], extra: dict[str, Any] | None
) -> tuple[list[Row], str | None]:
    size = page_size(args)
    filters: dict[str, Any] = dict(extra or {})
    tags = tag_filter(args)
    if tags is not None:
        filters.update(tags)
    offset = args.get("offset")
    if isinstance(offset, list):
        offset = offset[0] if offset else None
    if offset is not None and not isinstance(offset, str):
        offset = str(offset)
    return db.dao(spec.name).page(size, offset, filters or None)


def collection_get(spec: EntitySpec) -> Handler:
    """``GET /E``: one page, ``next`` repeating ``tags`` and ``size``."""

    async def handler(ctx: Context) -> Response:
        args = ctx.args.uri

        def op(db: Store) -> Response:
            rows, offset = _page(db, spec, args, None)
            body = collection_body(rows, offset, next_link(f"/{spec.path}", offset, args))
            return json_response(200, body)

        return await _run(ctx, op)

    return handler


def collection_post(spec: EntitySpec) -> Handler:
    """``POST /E`` -> 201 with the stored row."""

    async def handler(ctx: Context) -> Response:
        data = ctx.post(spec.name)

        def op(db: Store) -> Response:
            if ctx.dbless:
                raise unsupported(spec, "insert")
            return json_response(201, db.dao(spec.name).insert(data))

        return await _run(ctx, op)

    return handler


def nested_collection_get(child: EntitySpec, parent: EntitySpec, fk: str) -> Handler:
    """``GET /P/:P/E``: the page of E whose ``fk`` is P; ``next`` keeps the P segment as written."""

    async def handler(ctx: Context) -> Response:
        args = ctx.args.uri
        raw_parent = ctx.params[parent.name]

        def op(db: Store) -> Response:
            rows, offset = _page(db, child, args, {fk: _parent_id(db, parent, unescape_segment(raw_parent))})
            link = next_link(f"/{parent.path}/{raw_parent}/{child.nested_path}", offset, None)
            return json_response(200, collection_body(rows, offset, link))

        return await _run(ctx, op)

    return handler


def nested_collection_post(child: EntitySpec, parent: EntitySpec, fk: str) -> Handler:
    """``POST /P/:P/E``: insert with ``fk`` set to P (404 when P does not exist)."""

    async def handler(ctx: Context) -> Response:
        data = ctx.post(child.name)
        key = _key(ctx, parent)

        def op(db: Store) -> Response:
            data[fk] = {"id": _parent_id(db, parent, key)}
            if ctx.dbless:
                raise unsupported(child, "insert")
            return json_response(201, db.dao(child.name).insert(data))

        return await _run(ctx, op)

    return handler


# --------------------------------------------------------------------------------------------- items
def entity_get(spec: EntitySpec) -> Handler:
    async def handler(ctx: Context) -> Response:
        key = _key(ctx, spec)

        def op(db: Store) -> Response:
            row = _select(db, spec, key)
            if row is None:
                raise _not_found()
            return json_response(200, row)

        return await _run(ctx, op)

    return handler


def update_row(db: Store, spec: EntitySpec, key: str, data: dict[str, Any], dbless: bool) -> Row:
    """PATCH semantics with the DAO's code-6 404 for a missing entity."""
    if dbless:
        raise unsupported(spec, "update", key)
    try:
        return db.dao(spec.name).update(key, data)
    except NotFound:
        raise not_found_error(spec, key) from None


def upsert_row(db: Store, spec: EntitySpec, key: str, data: dict[str, Any], dbless: bool) -> Row:
    if dbless:
        raise unsupported(spec, "upsert", key)
    return db.dao(spec.name).upsert(key, data)


def _entity_write(spec: EntitySpec, write: Callable[[Store, EntitySpec, str, dict[str, Any], bool], Row]) -> Handler:
    """``PUT``/``PATCH /E/:E``: the body is written by ``write`` (upsert or update) and echoed with 200."""

    async def handler(ctx: Context) -> Response:
        key = _key(ctx, spec)
        data = ctx.post(spec.name)

        def op(db: Store) -> Response:
            return json_response(200, write(db, spec, key, data, ctx.dbless))

        return await _run(ctx, op)

    return handler


def entity_put(spec: EntitySpec) -> Handler:
    return _entity_write(spec, upsert_row)


def entity_patch(spec: EntitySpec) -> Handler:
    return _entity_write(spec, update_row)


def entity_delete(spec: EntitySpec) -> Handler:
    """``DELETE /E/:E`` -> 204 whether or not it existed (Kong's DAO delete is idempotent)."""

    async def handler(ctx: Context) -> Response:
        key = _key(ctx, spec)

        def op(db: Store) -> Response:
            if ctx.dbless:
                raise unsupported(spec, "delete", key)
            db.dao(spec.name).delete(key)
            return json_response(204)

        return await _run(ctx, op)

    return handler


# --------------------------------------------------------------------------------------------- /E/:E/f
def foreign_entity_handlers(spec: EntitySpec, fk: str) -> dict[str, Handler]:
    """``/E/:E/f``: the entity an E points at (``/routes/{r}/service``)."""
    target = by_name(spec.foreign[fk])

    def referenced(db: Store, key: str) -> str:
        """The id the E row points at; 404 when the row does not exist or points at nothing."""
        row = _select(db, spec, key)
        ref = _fk_id(row, fk) if row is not None else None
        if ref is None:
            raise _not_found()
        return ref

    async def get(ctx: Context) -> Response:
        key = _key(ctx, spec)

        def op(db: Store) -> Response:
            found = _select(db, target, referenced(db, key))
            if found is None:
                raise _not_found()
            return json_response(200, found)

        return await _run(ctx, op)

    async def put(ctx: Context) -> Response:
        key = _key(ctx, spec)
        data = ctx.post(target.name)

        def op(db: Store) -> Response:
            row = _select(db, spec, key)
            if row is None:
                raise _not_found()
            ref = _fk_id(row, fk)
            associate = ref is None
            target_key = ref if ref is not None else str(uuid.uuid4())
            found = upsert_row(db, target, target_key, data, ctx.dbless)
            if associate:
                update_row(db, spec, row["id"], {fk: {"id": found["id"]}}, ctx.dbless)
            return json_response(200, found)

        return await _run(ctx, op)

    async def patch(ctx: Context) -> Response:
        key = _key(ctx, spec)
        data = ctx.post(target.name)

        def op(db: Store) -> Response:
            return json_response(200, update_row(db, target, referenced(db, key), data, ctx.dbless))

        return await _run(ctx, op)

    async def delete(ctx: Context) -> Response:
        key = _key(ctx, spec)

        def op(db: Store) -> Response:
            referenced(db, key)
            return message(405, "Method not allowed")

        return await _run(ctx, op)

    return {"GET": get, "PUT": put, "PATCH": patch, "DELETE": delete}


# --------------------------------------------------------------------------------------------- /P/:P/E/:E
def _parent_id(db: Store, parent: EntitySpec, parent_key: str) -> str:
    """The id of the parent row addressed in the path; 404 when there is none."""
    owner = _select(db, parent, parent_key)
    if owner is None:
        raise _not_found()
    return str(owner["id"])


def _owned(db: Store, parent: EntitySpec, parent_key: str, child: EntitySpec, child_key: str, fk: str) -> Row:
    """The child row, checked to belong to the parent; 404 otherwise."""
    owner_id = _parent_id(db, parent, parent_key)
    row = _select(db, child, child_key)
    if row is None or _fk_id(row, fk) != owner_id:
        raise _not_found()
    return row


def nested_entity_handlers(parent: EntitySpec, child: EntitySpec, fk: str) -> dict[str, Handler]:
    """``/P/:P/E/:E``: an E addressed through its parent (``/services/{s}/routes/{r}``)."""

    async def get(ctx: Context) -> Response:
        pkey, ckey = _key(ctx, parent), _key(ctx, child)

        def op(db: Store) -> Response:
            return json_response(200, _owned(db, parent, pkey, child, ckey, fk))

        return await _run(ctx, op)

    async def put(ctx: Context) -> Response:
        pkey, ckey = _key(ctx, parent), _key(ctx, child)
        data = ctx.post(child.name)

        def op(db: Store) -> Response:
            data[fk] = {"id": _parent_id(db, parent, pkey)}
            return json_response(200, upsert_row(db, child, ckey, data, ctx.dbless))

        return await _run(ctx, op)

    async def patch(ctx: Context) -> Response:
        pkey, ckey = _key(ctx, parent), _key(ctx, child)
        data = ctx.post(child.name)

        def op(db: Store) -> Response:
            row = _owned(db, parent, pkey, child, ckey, fk)
            if not data.get(fk):
                data[fk] = {"id": _fk_id(row, fk)}  # the parent's id, checked by _owned
            return json_response(200, update_row(db, child, ckey, data, ctx.dbless))

        return await _run(ctx, op)

    async def delete(ctx: Context) -> Response:
        pkey, ckey = _key(ctx, parent), _key(ctx, child)

        def op(db: Store) -> Response:
            _owned(db, parent, pkey, child, ckey, fk)
            if ctx.dbless:
                raise unsupported(child, "delete", ckey)
            db.dao(child.name).delete(ckey)
            return json_response(204)

        return await _run(ctx, op)

    return {"GET": get, "PUT": put, "PATCH": patch, "DELETE": delete}


def run_op(ctx: Context, fn: Callable[[Store], Response]) -> Awaitable[Response]:
    """For special-case modules: run a store function with the same 404/error handling."""
    return _run(ctx, fn)


def not_found() -> Exception:
    return _not_found()
