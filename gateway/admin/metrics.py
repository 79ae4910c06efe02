"""``GET /metrics`` on the Admin and Status APIs (Kong's prometheus plugin ``exporter.collect``): one route, kept
apart so that both apps can add it without importing each other."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from gateway.admin.context import Context
from gateway.admin.endpoints import Handler
from gateway.admin.http import Response
from gateway.observability.exposition import CONTENT_TYPE

__all__ = ["metrics_routes"]


def metrics_routes(metrics: Callable[[], Awaitable[bytes]]) -> dict[str, dict[str, Handler]]:
    """``GET /metrics`` (Kong's ``exporter.collect``): the text exposition, Kong's ``Content-Type``."""

    async def handler(ctx: Context) -> Response:
        return Response(200, await metrics(), [("Content-Type", CONTENT_TYPE)])

    return {"/metrics": {"GET": handler}}
