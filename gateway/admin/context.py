"""What a handler gets: the request, its ``:params``, its arguments, and a way to reach the store.

Every store call of a request runs inside one ``ctx.run(fn)``: ``fn(db)`` is executed on the store's single
worker thread (``Database.run``), so the event loop never blocks, the calls of one request see one
consistent store (writes are serialised there), and the response is built only after the commit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.admin.bodies import Args
from gateway.admin.http import Request
from gateway.store.interface import Store

if TYPE_CHECKING:
    from gateway.settings import Settings

__all__ = ["Context", "FormCoercer"]

T = TypeVar("T")


FormCoercer = Callable[[str, dict[str, Any]], dict[str, Any]]


class Context:
    """One request in flight."""

    __slots__ = ("args", "coerce", "db", "params", "request", "settings", "typed")

    def __init__(
        self,
        request: Request,
        params: dict[str, str],
        args: Args,
        db: Store,
        settings: Settings,
        coerce: FormCoercer,
    ) -> None:
        self.request = request
        self.params = params
        self.args = args
        self.db = db
        self.settings = settings
        self.coerce = coerce
        self.typed = False

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def dbless(self) -> bool:
        return self.settings.database == "off"

    async def run(self, fn: Callable[[Store], T]) -> T:
        """Run ``fn(db)`` on the store's worker thread and return its result (or raise its error)."""
        result: T = await self.db.run(fn, self.db)
        return result

    def post(self, entity: str) -> dict[str, Any]:
        """The body arguments, typed for ``entity`` when they came from a form (a fresh dict each time)."""
        post = dict(self.args.post)
        if self.args.is_form and not self.typed:
            return self.coerce(entity, post)
        return post

    def set_post(self, data: dict[str, Any]) -> None:
        """Replace the body arguments with already-typed ones (special cases that rewrite the body)."""
        self.args.post = data
        self.typed = True
