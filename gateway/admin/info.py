"""Node endpoints: ``GET /`` (node information), ``GET /status``, ``GET /endpoints``,
``GET /plugins/enabled`` and the schema endpoints (``kong/api/routes/kong.lua``, ``health.lua``).

``GET /`` reports the Kong version we reproduce (``KONG_VERSION``) so clients that branch on it keep
working, the settings with secrets masked, the plugins this build knows and those configured.
``GET /status`` has Kong's shape: ``server`` counters from the proxy, ``database.reachable`` (or, in
DB-less mode, ``configuration_hash`` instead of ``database``).
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import platform
import socket
import uuid
from collections.abc import Callable
from typing import Any

from gateway.admin.catalog import by_admin_name
from gateway.admin.context import Context
from gateway.admin.endpoints import Handler, error_response, run_op
from gateway.admin.http import Response, json_response, message
from gateway.entities.errors import EntityError, schema_violation
from gateway.settings import Listener, Settings
from gateway.store.interface import Store
from gateway.version import KONG_VERSION

__all__ = ["NodeInfo", "info_routes", "public_configuration"]

_MASK = "******"
_SENSITIVE = ("key", "password", "secret", "token")


def _plain(value: Any) -> Any:
    if isinstance(value, Listener):
        flags = [name for name in ("ssl", "http2", "reuseport", "proxy_protocol") if getattr(value, name)]
        host = f"[{value.host}]" if ":" in value.host else value.host
        return " ".join([f"{host}:{value.port}", *flags])
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def public_configuration(settings: Settings) -> dict[str, Any]:
    """``kong.configuration.remove_sensitive()``: every setting, with keys and secrets masked."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        if f.name in ("source", "ignored_env"):
            continue
        value = getattr(settings, f.name)
        if any(word in f.name for word in _SENSITIVE) and value not in (None, (), ""):
            out[f.name] = _MASK
        else:
            out[f.name] = _plain(value)
    return out


@dataclasses.dataclass(slots=True)
class NodeInfo:
    """Process-wide facts ``GET /`` and ``/status`` report."""

    status: Callable[[], Any]  # the summed proxy counters, or an awaitable of them
    config_hash: Callable[[], str]
    #: the pids serving traffic (the workers; this process when it is the whole gateway), for ``pids.workers``
    #: and ``workers_lua_vms``
    pids: Callable[[], list[int]] = dataclasses.field(default=lambda: [os.getpid()])
    node_id: str = dataclasses.field(default_factory=lambda: str(uuid.uuid4()))
    hostname: str = dataclasses.field(default_factory=socket.gethostname)


def _available_plugins() -> dict[str, Any]:
    """Kong's ``available_on_server``: the loaded plugins, i.e. those the ``plugins`` setting enables."""
    from gateway.entities.plugin_configs import enabled_plugins
    from gateway.plugins import handler_class  # the package registers the bundled handlers

    out: dict[str, Any] = {}
    for name in enabled_plugins():
        handler = handler_class(name)
        out[name] = {"version": KONG_VERSION, "priority": handler.PRIORITY if handler is not None else 0}
    return out


def _configured_plugins(db: Store) -> list[str]:
    names: list[str] = []
    dao = db.dao("plugins")
    offset: str | None = None
    while True:
        rows, offset = dao.page(1000, offset, None)
        for row in rows:
            if row.get("name") not in names:
                names.append(str(row.get("name")))
        if offset is None:
            return names


def _root(node: NodeInfo) -> Handler:
    async def handler(ctx: Context) -> Response:
        def op(db: Store) -> Response:
            pid = os.getpid()
            return json_response(
                200,
                {
                    "tagline": "Welcome to kong",
                    "version": KONG_VERSION,
                    "edition": "community",
                    "hostname": node.hostname,
                    "node_id": node.node_id,
                    "timers": {"running": 0, "pending": 0},
                    "plugins": {
                        "available_on_server": _available_plugins(),
                        "enabled_in_cluster": _configured_plugins(db),
                    },
                    "lua_version": f"Python {platform.python_version()}",
                    "configuration": public_configuration(ctx.settings),
                    "pids": {"master": pid, "workers": node.pids()},
                },
            )

        return await run_op(ctx, op)

    return handler


def _status(node: NodeInfo) -> Handler:
    async def handler(ctx: Context) -> Response:
        server = node.status()
        if inspect.isawaitable(server):
            server = await server
        body: dict[str, Any] = {
            "memory": {"workers_lua_vms": [{"pid": pid} for pid in node.pids()], "lua_shared_dicts": {}},
            "server": dict(server),
        }
        if ctx.dbless:
            body["configuration_hash"] = node.config_hash()
        else:
            reachable = True
            try:
                await ctx.run(lambda db: db.ping())
            except Exception:  # any store failure means "not reachable", as Kong's connect() check
                reachable = False
            body["database"] = {"reachable": reachable}
        return json_response(200, body)

    return handler


def _endpoints(patterns: Callable[[], list[str]]) -> Handler:
    async def handler(ctx: Context) -> Response:
        data = []
        for pattern in patterns():
            data.append("/".join("{" + s[1:] + "}" if s.startswith(":") else s for s in pattern.split("/")))
        data.sort(key=lambda p: p.replace("/", "\x00"))
        return json_response(200, {"data": data})

    return handler


async def _plugins_enabled(ctx: Context) -> Response:
    from gateway.entities.plugin_configs import enabled_plugins

    return json_response(200, {"enabled_plugins": enabled_plugins()})


def validate_entity(entity: str, data: dict[str, Any]) -> Response:
    """``validate_schema``: defaults filled as for an insert, then the full validation."""
    from gateway.entities import SCHEMAS

    schema = SCHEMAS.get(entity)
    if schema is None:
        return message(404, f"No entity named '{entity}'")
    try:
        errors = schema.validate(schema.process_auto_fields(data, "insert"))
    except EntityError as err:
        return error_response(err)
    if errors:
        return error_response(schema_violation(errors))
    return message(200, "schema validation successful")


def _validate(fixed: str | None) -> Handler:
    async def handler(ctx: Context) -> Response:
        entity = fixed or ctx.params["db_entity_name"]
        # Kong validates ``self.params``: query and body arguments together.
        params = {k: v for k, v in ctx.args.uri.items() if k != "db_entity_name"}
        params.update(ctx.post(entity) if by_admin_name(entity) is not None else ctx.args.post)
        return validate_entity(entity, params)

    return handler


def info_routes(node: NodeInfo, patterns: Callable[[], list[str]]) -> dict[str, dict[str, Handler]]:
    return {
        "/": {"GET": _root(node)},
        "/status": {"GET": _status(node)},
        "/endpoints": {"GET": _endpoints(patterns)},
        "/plugins/enabled": {"GET": _plugins_enabled},
        "/schemas/:db_entity_name/validate": {"POST": _validate(None)},
        "/schemas/plugins/validate": {"POST": _validate("plugins")},
    }
