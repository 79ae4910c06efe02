"""``/config`` (``kong/api/routes/config.lua``): DB-less configuration as one document.

``POST /config`` accepts the configuration as the JSON body itself (an object with ``_format_version``),
as a YAML body (``application/yaml`` / ``text/yaml``), or as a string in a ``config`` argument (JSON or
form field) holding YAML or JSON. It is validated and swapped in atomically by ``Database.replace_all``:
on any error nothing changes and the answer is 400 with the ``invalid declarative configuration`` (code
14) error. Success answers 201 with the loaded entities keyed by name, then by id, as Kong does.
``?check_hash=1`` answers 304 when the configuration is the one already loaded.

``GET /config`` answers ``{"config": "<yaml>"}``. With a database both answer 400.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import yaml

from gateway.admin.context import Context
from gateway.admin.endpoints import Handler, error_response, run_op
from gateway.admin.http import Response, json_response, message
from gateway.entities.errors import Code, EntityError
from gateway.store import declarative
from gateway.store.interface import Config, Store

__all__ = ["ConfigState", "config_routes", "dump_config", "hash_config"]

EMPTY_HASH = "0" * 32
_ONLY_DBLESS = "this endpoint is only available when Kong is configured to not use a database"


def hash_config(value: Any) -> str:
    """A stable digest of a configuration: the raw text when there is one, else canonical JSON."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


class ConfigState:
    """The hash of the configuration last loaded, for ``check_hash`` and ``/status``."""

    def __init__(self) -> None:
        self.hash: str | None = None

    def current(self, export: Callable[[], Config]) -> str:
        if self.hash is None:
            rows = export()
            self.hash = EMPTY_HASH if not any(rows.values()) else hash_config(rows)
        return self.hash


def _declarative_error(text: str) -> EntityError:
    fields = {"error": text}
    return EntityError(Code.DECLARATIVE_CONFIG, f'declarative config is invalid: {{error="{text}"}}', fields, 400)


def _unserialize(text: str) -> dict[str, Any]:
    try:
        return declarative.parse_text(text)
    except ValueError as exc:
        raise _declarative_error(str(exc)) from None


def dump_config(db: Store) -> str:
    """The YAML of ``GET /config``: the store's declarative dump (flat, foreign keys as ids)."""
    document = declarative.dump(db)
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def _post(state: ConfigState) -> Handler:
    async def handler(ctx: Context) -> Response:
        if not ctx.dbless:
            return message(400, _ONLY_DBLESS)
        params: dict[str, Any] = dict(ctx.args.uri)
        params.update(ctx.args.post)
        check_hash = str(params.pop("check_hash", None)) == "1"
        params.pop("flatten_errors", None)
        new_hash: str | None = None
        try:
            if "_format_version" in params:
                document = params
            else:
                text = params.get("config")
                if not isinstance(text, str):
                    text = ctx.args.raw.decode("utf-8", errors="replace") if ctx.args.raw else None
                if not text:
                    return message(400, "expected a declarative configuration")
                # on the store's thread: YAML is parsed in Python and a large document must not stall the loop
                source = text
                document = await ctx.run(lambda _db: _unserialize(source))
                new_hash = hash_config(text)
        except EntityError as err:
            return error_response(err)
        if new_hash is None:
            new_hash = hash_config(document)

        def op(db: Store) -> Response:
            if check_hash and state.current(db.export) == new_hash:
                return json_response(304)
            db.replace_all(document)
            state.hash = new_hash
            loaded = db.export()
            return json_response(201, {name: {row["id"]: row for row in rows} for name, rows in loaded.items() if rows})

        return await run_op(ctx, op)

    return handler


def _get() -> Handler:
    async def handler(ctx: Context) -> Response:
        if not ctx.dbless:
            return message(400, _ONLY_DBLESS)
        return await run_op(ctx, lambda db: json_response(200, {"config": dump_config(db)}))

    return handler


def config_routes(state: ConfigState) -> dict[str, dict[str, Handler]]:
    return {"/config": {"GET": _get(), "POST": _post(state)}}
