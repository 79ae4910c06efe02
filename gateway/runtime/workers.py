"""The master's worker processes (``worker_processes`` > 1): spawn, configure, watch, respawn, regenerate, stop.

Theory of operation. With N > 1 the master is nginx's master: it runs the store, the Admin API, the snapshot manager
and the active health checks, and N proxy-only workers serve the traffic. As with nginx's ``reuseport``, the master
binds one set of listening sockets per worker slot with ``SO_REUSEPORT`` (the kernel spreads new connections over
them) and keeps them open: the worker of a slot gets its sockets at spawn, and when it dies or is replaced, the
connections waiting in its accept queue go to the slot's next worker instead of being reset. Every worker is forked
by the zygote (``gateway.runtime.zygote``, a fresh interpreter that never runs a loop), so all workers of a
generation share their ``ssl`` listeners' session ticket keys and resume each other's TLS sessions; each holds one
end of a socketpair (``gateway.runtime.channel``).

- Configuration: after each snapshot swap the manager calls ``publish(version, config)``; the export is encoded once
  as a ``config`` message with a new sequence number and sent to every worker (a new worker gets the latest one
  first). A worker answers ``ready`` (first one) or ``ack`` with that sequence number once its own snapshot is live.
  ``wait_synced()`` returns when every live worker of the current generation has acknowledged the latest sequence
  number: the Admin API awaits it (read-your-writes across processes). A worker that dies stops being waited for.
- Health: the master alone runs active probes; each change of a target's availability (probe results, or forced
  through the Admin API) is pushed as a ``health`` message. A new worker gets the master's unavailable targets after
  its ``ready``. Passive health is counted per process.
- ``/status``: ``stats()`` asks every ready worker for its counters (bounded wait); ``/metrics`` asks the same way
  with ``metrics=True``, and each answer also carries the worker's metric samples.
- A worker that exits while the master is running is logged at ``alert`` (nginx: ``worker process N exited on signal
  9``; a clean exit with code 0, which a group signal can cause before the master sees its own, at ``notice``) and
  respawned from the same zygote (same ticket keys), after a back-off that doubles with each quick death
  (0.1 s up to 5 s).
- ``regenerate()`` (SIGHUP, as an nginx reload): the zygote draws new ticket keys, a new generation of workers
  starts on the same sockets (each reads the configuration file afresh), and once it serves, the old generation
  stops accepting (answers ``closed``; the reload returns then) and drains. If the zygote itself dies, a new one is
  started and the workers are regenerated the same way, so the workers never disagree on keys.
- ``stop()`` sends ``stop`` to every worker (they stop accepting and drain), waits for them (bounded), then kills
  what is left and lets the zygote go. A signal sent to the whole process group (``docker stop`` on a shell
  entrypoint, Ctrl-C, ``kill -- -PGID``) reaches the workers too, which drain on their own; the zygote ignores
  SIGTERM and SIGINT and ends with the master's control socket, so a clean shutdown logs no ``alert``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING

from gateway.observability.errorlog import ErrorLog
from gateway.runtime import building
from gateway.runtime.channel import Channel, Message, encode, int_field
from gateway.runtime.zygote import Zygote

if TYPE_CHECKING:
    from gateway.settings import Listener
    from gateway.store.interface import Config
    from gateway.upstream.health import TargetHealth
    from gateway.upstream.healthcheck import HealthRegistry

__all__ = ["ListenError", "WorkerPool"]

BACKOFF_MIN = 0.1
BACKOFF_MAX = 5.0
#: a worker that lived at least this long resets the back-off
STABLE_AFTER = 10.0


def _exit_text(code: int | None) -> str:
    if code is None:
        return "exited"
    if code < 0:
        return f"exited on signal {-code}"
    return f"exited with code {code}"


class ListenError(OSError):
    """A proxy listener the master could not bind for its workers."""

    def __init__(self, listener: Listener, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror)
        self.listener = listener
        self.reason = cause.strerror or str(cause)


class _Worker:
    __slots__ = (
        "channel",
        "closed",
        "code",
        "exited",
        "pid",
        "reader",
        "ready",
        "retiring",
        "seq",
        "slot",
        "started",
    )

    def __init__(self, slot: int, pid: int, channel: Channel) -> None:
        loop = asyncio.get_running_loop()
        self.slot = slot
        self.pid = pid
        self.channel = channel
        self.ready: asyncio.Future[None] = loop.create_future()
        self.code: asyncio.Future[int | None] = loop.create_future()  # resolved by the zygote's exit report
        self.exited = asyncio.Event()
        self.closed = asyncio.Event()  # it no longer accepts (its answer to ``stop``)
        self.retiring = False  # an older generation, draining after a SIGHUP: not respawned, not waited for
        self.seq = -1
        self.started = time.monotonic()
        self.reader: asyncio.Task[None] | None = None


class WorkerPool:
    """``count`` proxy-only worker processes of this master, forked by one zygote."""

    def __init__(
        self,
        count: int,
        conf_path: str | None,
        overrides: dict[str, str],
        error_log: ErrorLog,
        health: HealthRegistry | None = None,
        tls_contexts: int = 0,
        listeners: Sequence[Listener] = (),
    ) -> None:
        self.count = count
        self.conf_path = conf_path
        self.overrides = dict(overrides)
        self.log = error_log
        self.health = health  # the master's HealthRegistry: new workers get its unavailable targets
        self.tls_contexts = tls_contexts  # blank contexts per generation: one per ssl listener
        self.listeners = list(listeners)
        #: each slot's listening sockets, bound by ``bind()`` and kept open here while workers come and go
        self._slot_sockets: dict[int, list[socket.socket]] = {}
        self._listen_map: list[int] = []  # for each socket of a slot, its listener's position in proxy_listen
        self.workers: dict[int, _Worker] = {}
        self.retiring: set[_Worker] = set()
        self.zygote: Zygote | None = None
        self.seq = 0
        self._latest: bytes | None = None
        self._stopping = False
        self._changed = asyncio.Event()
        self._stats: dict[int, asyncio.Future[Message]] = {}
        self._stats_id = 0
        self._failures: dict[int, int] = {}
        self._pending_codes: dict[int, int | None] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._regenerating: asyncio.Lock = asyncio.Lock()
        self._start_timeout = 30.0

    # ------------------------------------------------------------------ configuration
    def publish(self, version: int, config: Config) -> None:
        """A new snapshot is live in the master: send its export to every worker."""
        self.seq += 1
        self._latest = encode("config", seq=self.seq, version=version, config=config)
        for worker in self._all():
            worker.channel.send_raw(self._latest)

    async def wait_synced(self) -> None:
        """Until every live worker has acknowledged the latest configuration (unbounded: wrap it in a timeout)."""
        target = self.seq
        while True:
            if all(w.seq >= target for w in self.workers.values() if not w.exited.is_set()):
                return
            self._changed.clear()
            await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()

    def _all(self) -> list[_Worker]:
        return [*self.workers.values(), *self.retiring]

    # ------------------------------------------------------------------ health
    def push_health(self, upstream_id: str, target: TargetHealth) -> None:
        frame = self._health_frame(upstream_id, target)
        for worker in self._all():
            if worker.ready.done():
                worker.channel.send_raw(frame)

    @staticmethod
    def _health_frame(upstream_id: str, target: TargetHealth) -> bytes:
        return encode(
            "health",
            upstream=upstream_id,
            ip=target.ip,
            port=target.port,
            hostname=target.hostname,
            healthy=bool(target.available),
        )

    def _sync_health(self, worker: _Worker) -> None:
        health = self.health
        if health is None:
            return
        for upstream_id, target in health.unavailable():
            worker.channel.send_raw(self._health_frame(upstream_id, target))

    # ------------------------------------------------------------------ spawning
    def bind(self) -> None:
        """Bind every slot's listening sockets; ``ListenError`` (and nothing left bound) if one cannot be."""
        for slot in range(self.count):
            sockets: list[socket.socket] = []
            listen_map: list[int] = []
            self._slot_sockets[slot] = sockets
            for position, listener in enumerate(self.listeners):
                try:
                    bound = building.bind_sockets(listener)
                except OSError as exc:
                    self.close_sockets()
                    raise ListenError(listener, exc) from None
                sockets += bound
                listen_map += [position] * len(bound)
            self._listen_map = listen_map

    def close_sockets(self) -> None:
        for sockets in self._slot_sockets.values():
            for sock in sockets:
                sock.close()
        self._slot_sockets.clear()

    def _argv(self) -> list[str]:
        args: list[str] = ["--listen-map", ",".join(str(p) for p in self._listen_map)]
        if self.conf_path:
            args += ["--conf", self.conf_path]
        if self.overrides:
            args += ["--overrides", json.dumps(self.overrides)]
        return args

    async def _start_zygote(self) -> Zygote:
        zygote = await Zygote.start(self.tls_contexts, self._on_exit, self._on_zygote_gone, self._start_timeout)
        self.zygote = zygote
        return zygote

    async def _spawn(self, slot: int) -> _Worker:
        zygote = self.zygote
        if zygote is None:
            raise OSError("no zygote process")
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            pid = await zygote.spawn(child, self._slot_sockets.get(slot, []), self._argv())
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        channel = await Channel.open(parent)
        worker = _Worker(slot, pid, channel)
        if pid in self._pending_codes:  # it ended before we got here
            worker.code.set_result(self._pending_codes.pop(pid))
        self.workers[slot] = worker
        if self._latest is not None:
            channel.send_raw(self._latest)
        worker.reader = self._task(self._read(worker), f"worker {pid}")
        self.log.notice(f"start worker process {pid}")
        return worker

    async def start(self, timeout: float) -> None:
        """Start the zygote, fork the workers and wait until each serves (``RuntimeError`` if one dies or times out)."""
        self._start_timeout = timeout
        try:
            await self._start_zygote()
        except OSError as exc:
            raise RuntimeError(f"could not start the worker zygote process: {exc}") from None
        workers = [await self._spawn(slot) for slot in range(self.count)]
        await self._wait_ready(workers, timeout)

    async def _wait_ready(self, workers: list[_Worker], timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                for worker in workers:
                    exited = asyncio.ensure_future(worker.exited.wait())
                    try:
                        await asyncio.wait((worker.ready, exited), return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        exited.cancel()
                    if not worker.ready.done():
                        code = worker.code.result() if worker.code.done() else None
                        raise RuntimeError(
                            f"worker process {worker.pid} {_exit_text(code)} during start-up (see the error log)"
                        )
        except TimeoutError:
            raise RuntimeError(f"worker processes not ready after {timeout:.0f}s") from None

    def _task(self, coro: Coroutine[object, object, None], name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _on_exit(self, pid: int, code: int | None) -> None:
        """The zygote reports a worker's end (possibly before its channel's EOF is read)."""
        for worker in self._all():
            if worker.pid == pid:
                if not worker.code.done():
                    worker.code.set_result(code)
                return
        self._pending_codes[pid] = code

    async def _read(self, worker: _Worker) -> None:
        channel = worker.channel
        while True:
            message = await channel.receive()
            if message is None:
                break
            kind = message.get("type")
            if kind in ("ready", "ack"):
                seq = int_field(message, "seq")
                if seq is not None:
                    worker.seq = max(worker.seq, seq)
                if kind == "ready" and not worker.ready.done():
                    worker.ready.set_result(None)
                    self._sync_health(worker)
                self._notify()
            elif kind == "closed":
                worker.closed.set()
            elif kind == "stats":
                asked = int_field(message, "id")
                future = self._stats.get(asked) if asked is not None else None
                if future is not None and not future.done():
                    future.set_result(message)
        channel.close()
        worker.closed.set()
        code: int | None = None
        try:
            async with asyncio.timeout(5.0):  # the zygote reports every exit; it may be gone itself
                code = await asyncio.shield(worker.code)
        except TimeoutError:
            pass
        worker.exited.set()
        self.retiring.discard(worker)
        if self.workers.get(worker.slot) is worker:
            del self.workers[worker.slot]
        self._notify()
        if self._stopping or worker.retiring:
            self.log.notice(f"worker process {worker.pid} {_exit_text(code)}")
            return
        # nginx: "exited with code N" at notice, "exited on signal N" at alert. A clean exit (0) while the master
        # runs is a worker that took a group signal before the master did: respawned, but not a fault.
        self.log.log("notice" if code == 0 else "alert", f"worker process {worker.pid} {_exit_text(code)}")
        lived = time.monotonic() - worker.started
        failures = 0 if lived >= STABLE_AFTER else self._failures.get(worker.slot, 0) + 1
        self._failures[worker.slot] = failures
        delay = min(BACKOFF_MAX, BACKOFF_MIN * (2 ** max(0, failures - 1))) if failures else 0.0
        self._task(self._respawn(worker.slot, delay), f"respawn {worker.slot}")

    async def _respawn(self, slot: int, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        if self._stopping or slot in self.workers or self._regenerating.locked():
            return
        try:
            await self._spawn(slot)
        except OSError as exc:
            self.log.log("alert", f"could not respawn a worker process: {exc}")

    # ------------------------------------------------------------------ generations
    async def regenerate(self, timeout: float) -> None:
        """A new generation of workers with new ticket keys; the old one drains once the new one serves."""
        async with self._regenerating:
            if self._stopping:
                return
            zygote = self.zygote
            if zygote is None:
                zygote = await self._start_zygote()
            else:
                await zygote.regenerate()
            old = list(self.workers.values())
            for worker in old:
                worker.retiring = True
                self.retiring.add(worker)
            self.workers = {}
            fresh = [await self._spawn(slot) for slot in range(self.count)]
            try:
                await self._wait_ready(fresh, timeout)
            except RuntimeError as exc:
                self.log.log("alert", f"[runtime] new worker generation: {exc}")
            for worker in old:
                worker.channel.send("stop")
            # return once only the new generation accepts (bounded): a client connecting after the reload
            # meets the new configuration and the new ticket keys
            closing = [asyncio.ensure_future(worker.closed.wait()) for worker in old]
            if closing:
                _, pending = await asyncio.wait(closing, timeout=5.0)
                for future in pending:
                    future.cancel()
            self._notify()

    def _on_zygote_gone(self) -> None:
        """The zygote ended while the master still held it. Its workers' exit codes will never come (they were its
        children): their waits end now rather than after ``_read``'s bound. While stopping that is the end of a
        clean shutdown (``notice``); otherwise it is a fault: ``alert``, and a new zygote with a new generation."""
        code = self.zygote.proc.returncode if self.zygote is not None else None
        self.zygote = None
        for worker in self._all():
            if not worker.code.done():
                worker.code.set_result(None)
        if self._stopping:
            self.log.notice(f"worker zygote process {_exit_text(code)}")
            return
        self.log.log("alert", f"worker zygote process {_exit_text(code)}; starting a new one")
        self._task(self._replace_zygote(), "replace zygote")

    async def _replace_zygote(self) -> None:
        try:
            await self.regenerate(self._start_timeout)
        except (OSError, RuntimeError) as exc:
            self.log.log("alert", f"could not start a new worker zygote process: {exc}")

    # ------------------------------------------------------------------ stats, signals
    def pids(self) -> list[int]:
        return [w.pid for w in self.workers.values() if not w.exited.is_set()]

    def ready_count(self) -> int:
        """Workers of the current generation serving their first snapshot or a later one (``/status/ready``)."""
        return sum(1 for w in self.workers.values() if w.ready.done() and not w.exited.is_set())

    async def stats(self, timeout: float = 1.0, metrics: bool = False) -> list[Message]:
        """Every ready worker's ``{pid, counters}`` (the ones that answer within ``timeout``), with ``metrics``
        (its ``process_share``) when asked."""
        loop = asyncio.get_running_loop()
        asked: list[asyncio.Future[Message]] = []
        for worker in self._all():
            if not worker.ready.done() or worker.exited.is_set():
                continue
            self._stats_id += 1
            future: asyncio.Future[Message] = loop.create_future()
            self._stats[self._stats_id] = future
            if metrics:
                worker.channel.send("stats", id=self._stats_id, metrics=True)
            else:
                worker.channel.send("stats", id=self._stats_id)
            asked.append(future)
        if not asked:
            return []
        done, _ = await asyncio.wait(asked, timeout=timeout)
        for key in [k for k, f in self._stats.items() if f in asked]:
            del self._stats[key]
        return [f.result() for f in done]

    def signal(self, sig: signal.Signals) -> None:
        for worker in self._all():
            if not worker.exited.is_set():
                _kill(worker.pid, sig)

    # ------------------------------------------------------------------ stop
    def begin_stop(self) -> None:
        """Tell every worker to stop accepting and drain (no respawn from now on)."""
        self._stopping = True
        for task in list(self._tasks):
            if task.get_name().startswith(("respawn", "replace")):
                task.cancel()
        for worker in self._all():
            worker.channel.send("stop")

    async def stop(self, timeout: float) -> None:
        """``begin_stop`` then wait for the workers (bounded); kill what is left; let the zygote go."""
        self.begin_stop()
        workers = self._all()
        waits = [asyncio.ensure_future(w.exited.wait()) for w in workers]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=timeout)
            for future in pending:
                future.cancel()
        for worker in workers:
            if not worker.exited.is_set():
                self.log.warn(f"worker process {worker.pid} still running after {timeout:.0f}s; killing it")
                _kill(worker.pid, signal.SIGKILL)
        for worker in workers:
            if worker.reader is not None:
                try:
                    async with asyncio.timeout(6.0):
                        await worker.reader
                except (TimeoutError, asyncio.CancelledError):
                    worker.reader.cancel()
        if self.zygote is not None:
            await self.zygote.wait_closed()
        self.close_sockets()


def _kill(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass
