"""Which plugin instances run for a request, precompiled per route (Kong's ``kong/runloop/plugins_iterator.lua``).

Kong's rule (``lookup_cfg``): for each plugin *name*, in priority order, the instance attached to the most specific
combination of the request's route, service and consumer wins, in this order:

    route+service+consumer, route+consumer, service+consumer, route+service, consumer, route, service, global

The consumer is the one authenticated *when that plugin's turn comes* (so an auth plugin with a higher priority
can select the consumer-scoped instance of a later plugin), and it is ignored for plugins that cannot be scoped to
a consumer (``Plugin.NO_CONSUMER``). Only enabled plugins with a registered handler are considered.

What is precompiled. Route and service are known from the route alone, so for every route the snapshot stores a
``Chain``: one ``Slot`` per plugin name that can apply, in priority order, holding the instance chosen without a
consumer and, when consumer-scoped instances exist, a dict consumer id -> instance. A request pays one dict lookup
for its route (``PluginIndex.chain``); routes without any applicable plugin have no chain at all.

Running. ``run_access`` walks the slots; a handler may answer (``Exit``), continue (None) or return an awaitable,
in which case the rest of the walk continues in a task and ``run_access`` returns that task. The instances that
were selected are kept on the context (``collected``) for ``header_filter`` and ``log``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from gateway.entities.index import foreign_id, index_of
from gateway.plugins.base import BuildContext, Exit, Plugin, PluginContext, handler_class

__all__ = ["Chain", "PluginIndex", "Slot", "lookup_instance", "run_access", "run_header_filter", "run_log"]

Key = tuple[str | None, str | None, str | None]


def lookup_instance(
    combos: Mapping[Key, Plugin], route_id: str | None, service_id: str | None, consumer_id: str | None
) -> Plugin | None:
    """Kong's ``lookup_cfg``: the instance of the most specific matching combination, or None."""
    get = combos.get
    if route_id and service_id and consumer_id:
        found = get((route_id, service_id, consumer_id))
        if found is not None:
            return found
    if route_id and consumer_id:
        found = get((route_id, None, consumer_id))
        if found is not None:
            return found
    if service_id and consumer_id:
        found = get((None, service_id, consumer_id))
        if found is not None:
            return found
    if route_id and service_id:
        found = get((route_id, service_id, None))
        if found is not None:
            return found
    if consumer_id:
        found = get((None, None, consumer_id))
        if found is not None:
            return found
    if route_id:
        found = get((route_id, None, None))
        if found is not None:
            return found
    if service_id:
        found = get((None, service_id, None))
        if found is not None:
            return found
    return get((None, None, None))


class Slot:
    """One plugin name in a route's chain: the instance to run, by authenticated consumer."""

    __slots__ = ("by_consumer", "default", "name")

    def __init__(self, name: str, default: Plugin | None, by_consumer: dict[str, Plugin] | None) -> None:
        self.name = name
        self.default = default
        self.by_consumer = by_consumer

    def pick(self, consumer: Mapping[str, Any] | None) -> Plugin | None:
        by_consumer = self.by_consumer
        if by_consumer is not None and consumer is not None:
            found = by_consumer.get(str(consumer.get("id")))
            if found is not None:
                return found
        return self.default


class Chain:
    """The slots of one route, in priority order, and whether any later phase has work."""

    __slots__ = ("has_header_filter", "has_log", "slots")

    def __init__(self, slots: Sequence[Slot]) -> None:
        self.slots = tuple(slots)
        instances = [inst for slot in self.slots for inst in _instances(slot)]
        self.has_header_filter = any(type(inst).implements("header_filter") for inst in instances)
        self.has_log = any(type(inst).implements("log") for inst in instances)

    def __repr__(self) -> str:
        return f"Chain({[slot.name for slot in self.slots]})"


def _instances(slot: Slot) -> list[Plugin]:
    found = [slot.default] if slot.default is not None else []
    if slot.by_consumer:
        found.extend(slot.by_consumer.values())
    return found


def _priority_key(cls: type[Plugin]) -> tuple[int, str]:
    return (cls.PRIORITY, cls.NAME)


class PluginIndex:
    """All enabled plugin instances of a snapshot, as per-route chains plus the certificate-phase policies.

    Attributes:
        certificate_phase: ``(conn, server_name, certificate_entry) -> None`` run by the TLS listener's servername
            callback after the certificate is chosen, or None when no plugin needs the handshake.
        instances: plugin id -> compiled instance.
        policies: plugin name -> whatever that handler's ``handshake_policy`` built (diagnostics, tests).
    """

    __slots__ = ("_chains", "certificate_phase", "instances", "policies")

    def __init__(
        self,
        chains: dict[str, Chain],
        instances: dict[str, Plugin],
        policies: dict[str, Any],
        certificate_phase: Callable[[Any, str | None, Any], None] | None,
    ) -> None:
        self._chains = chains
        self.instances = instances
        self.policies = policies
        self.certificate_phase = certificate_phase

    @classmethod
    def empty(cls) -> PluginIndex:
        return cls({}, {}, {}, None)

    def chain(self, route_id: str) -> Chain | None:
        """The chain of a route, or None when no plugin applies to it (the common, free case)."""
        return self._chains.get(route_id)

    def __len__(self) -> int:
        return len(self.instances)

    @classmethod
    def build(cls, config: Mapping[str, Any], log: Any = None, build: BuildContext | None = None) -> PluginIndex:
        """Compile every enabled plugin row with a registered handler and precompute each route's chain.

        A plugin whose compile step fails is left out with an error line (Kong would refuse the write; rows that
        reach us were validated, so this only guards against a broken handler).
        """
        index = index_of(config)
        build = build if build is not None else BuildContext(index, log)
        combos: dict[str, dict[Key, Plugin]] = {}
        classes: dict[str, type[Plugin]] = {}
        instances: dict[str, Plugin] = {}
        scoped: dict[str, list[tuple[Plugin, Mapping[str, Any]]]] = {}
        for row in index.rows("plugins"):
            if row.get("enabled") is False:
                continue
            name = row.get("name")
            handler = handler_class(name) if isinstance(name, str) else None
            if handler is None:
                continue
            try:
                instance = handler.compile(row, build)
            except Exception as exc:  # a handler bug must not take the whole snapshot down
                build.error(f"[{name}] plugin {row.get('id')} could not be compiled, it will not run: {exc}")
                continue
            key: Key = (foreign_id(row.get("route")), foreign_id(row.get("service")), foreign_id(row.get("consumer")))
            combos.setdefault(handler.NAME, {})[key] = instance
            classes[handler.NAME] = handler
            instances[instance.id] = instance
            scoped.setdefault(handler.NAME, []).append((instance, row))

        ordered = sorted(classes.values(), key=_priority_key, reverse=True)
        chains: dict[str, Chain] = {}
        if ordered:
            for route in index.rows("routes"):
                route_id = foreign_id(route.get("id"))
                if route_id is None:
                    continue
                service_id = foreign_id(route.get("service"))
                slots = [
                    slot for handler in ordered if (slot := _slot(handler, combos[handler.NAME], route_id, service_id))
                ]
                if slots:
                    chains[route_id] = Chain(slots)

        policies: dict[str, Any] = {}
        phases: list[Callable[[Any, str | None, Any], None]] = []
        for handler in ordered:
            policy = handler.handshake_policy(scoped[handler.NAME], build)
            if policy is not None:
                policies[handler.NAME] = policy
                phases.append(policy)
        certificate_phase: Callable[[Any, str | None, Any], None] | None = None
        if len(phases) == 1:
            certificate_phase = phases[0]
        elif phases:
            certificate_phase = _compose(phases)
        return cls(chains, instances, policies, certificate_phase)


def _compose(phases: list[Callable[[Any, str | None, Any], None]]) -> Callable[[Any, str | None, Any], None]:
    def run(conn: Any, server_name: str | None, entry: Any) -> None:
        for phase in phases:
            phase(conn, server_name, entry)

    return run


def _slot(handler: type[Plugin], combos: dict[Key, Plugin], route_id: str, service_id: str | None) -> Slot | None:
    default = lookup_instance(combos, route_id, service_id, None)
    by_consumer: dict[str, Plugin] | None = None
    if not handler.NO_CONSUMER:
        for _, _, consumer_id in combos:
            if consumer_id is None:
                continue
            found = lookup_instance(combos, route_id, service_id, consumer_id)
            if found is not None and found is not default:
                if by_consumer is None:
                    by_consumer = {}
                by_consumer[consumer_id] = found
    if default is None and not by_consumer:
        return None
    return Slot(handler.NAME, default, by_consumer)


# ------------------------------------------------------------------------------------------------ running
def run_access(chain: Chain, ctx: PluginContext) -> Exit | asyncio.Future[Exit | None] | None:
    """Run the access phase; returns the plugin's ``Exit``, None to proceed, or a future when a handler waits.

    Every slot's instance is collected (``ctx.data["__collected__"]``), also after an ``Exit``, as Kong's
    collecting iterator keeps iterating without executing.
    """
    collected: list[Plugin] = []
    ctx.data["__collected__"] = collected
    slots = chain.slots
    for index, slot in enumerate(slots):
        instance = slot.pick(ctx.consumer)
        if instance is None:
            continue
        collected.append(instance)
        result = instance.access(ctx)
        if result is None:
            continue
        if isinstance(result, Exit):
            _collect_rest(slots, index + 1, ctx, collected)
            return result
        if inspect.isawaitable(result):
            return asyncio.ensure_future(_continue(slots, index, result, ctx, collected))
    return None


async def _continue(
    slots: Sequence[Slot], index: int, pending: Awaitable[Exit | None], ctx: PluginContext, collected: list[Plugin]
) -> Exit | None:
    result = await pending
    while True:
        if isinstance(result, Exit):
            _collect_rest(slots, index + 1, ctx, collected)
            return result
        index += 1
        if index >= len(slots):
            return None
        instance = slots[index].pick(ctx.consumer)
        if instance is None:
            result = None
            continue
        collected.append(instance)
        step = instance.access(ctx)
        result = await step if inspect.isawaitable(step) else step


def _collect_rest(slots: Sequence[Slot], start: int, ctx: PluginContext, collected: list[Plugin]) -> None:
    for slot in slots[start:]:
        instance = slot.pick(ctx.consumer)
        if instance is not None:
            collected.append(instance)


def run_header_filter(ctx: PluginContext) -> None:
    """``header_filter`` of the collected instances (they add to ``ctx.response_headers``)."""
    for instance in ctx.data.get("__collected__", ()):
        if type(instance).implements("header_filter"):
            instance.header_filter(ctx)


def run_log(ctx: PluginContext) -> None:
    """``log`` of the collected instances; a failing log handler is logged, never raised into the connection."""
    for instance in ctx.data.get("__collected__", ()):
        if type(instance).implements("log"):
            try:
                instance.log(ctx)
            except Exception as exc:
                ctx.log("error", type(instance).NAME, f"log phase failed: {exc}")
