"""The compiled snapshot the Admin API's ``/tls`` endpoints read (``gateway.admin.tls``).

One process serving traffic: the proxy's own current snapshot, the very objects its SNI callback and connector use.
A master with worker processes serves no traffic and builds only its balancers (``building.serves_traffic``), so it
builds a full snapshot from the store for these endpoints, with the same code and the same settings-wide TLS inputs
the workers use (``building``: ``ServerTlsConfig``, the upstream TLS files), on the store's thread, once per store
version and only when asked; every worker builds the same snapshot from the same export.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from gateway.runtime.snapshot import Snapshot
    from gateway.store.interface import Config, Store

__all__ = ["TlsSnapshots"]


class _Proxy(Protocol):
    """What this needs of ``ProxyState``: its current snapshot."""

    snapshot: Snapshot


class TlsSnapshots:
    """``await view()`` -> the snapshot to describe; see the module docstring.

    Args:
        proxy: the process's ``ProxyState`` (its ``snapshot`` is the answer when this process serves traffic).
        serves_traffic: whether this process proxies (``building.serves_traffic``).
        db: the store (a master builds from its export).
        build: a store export -> a full snapshot (``building.build_full``).
    """

    def __init__(
        self,
        proxy: _Proxy | None,
        serves_traffic: bool,
        db: Store,
        build: Callable[[Config], Snapshot],
    ) -> None:
        self._proxy = proxy if serves_traffic else None
        self._db = db
        self._build = build
        self._cached: tuple[int, Snapshot] | None = None

    async def __call__(self) -> Snapshot:
        if self._proxy is not None:
            return self._proxy.snapshot
        version = self._db.version
        cached = self._cached
        if cached is not None and cached[0] == version:
            return cached[1]
        snapshot = await self._db.run(self._export_and_build)
        self._cached = (version, snapshot)
        return snapshot

    def _export_and_build(self) -> Snapshot:
        return self._build(self._db.export())
