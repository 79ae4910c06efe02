"""The master's worker processes (``worker_processes`` > 1): spawn, configure, watch, respawn, stop.

Theory of operation. The master is a full gateway (store, Admin API, snapshot manager, health checks, proxy
listeners); it also runs N-1 proxy-only workers, each a fresh interpreter (``python -m gateway.runtime.worker``,
never a fork of a running loop) holding one end of a socketpair (``gateway.runtime.channel``). Every proxy listener
of every process is bound with ``SO_REUSEPORT``, so the kernel spreads new connections over the processes.

- Configuration: after each snapshot swap the manager calls ``publish(version, config)``; the export is encoded
  once as a ``config`` message with a new sequence number and sent to every worker (a respawned worker gets the
  latest one first). A worker answers ``ready`` (first one) or ``ack`` with that sequence number once its own
  snapshot is live. ``wait_synced()`` returns when every live worker has acknowledged the latest sequence number:
  the Admin API awaits it (read-your-writes across processes). A worker that dies stops being waited for.
- Health: the master alone runs active probes; each change of a target's availability (probe results, or forced
  through the Admin API) is pushed as a ``health`` message. A new worker gets the master's unavailable targets
  after its ``ready``. Passive health is counted per process.
- ``/status``: ``stats()`` asks every ready worker for its counters (bounded wait).
- A worker that exits while the master is running is logged at ``alert`` (nginx: ``worker process N exited on
  signal 9``) and respawned, after a back-off that doubles with each quick death (0.1 s up to 5 s).
- ``stop()`` sends ``stop`` to every worker (they stop accepting and drain), waits for them (bounded), then kills
  what is left.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from gateway.observability.errorlog import ErrorLog
from gateway.runtime.channel import Channel, encode

__all__ = ["WorkerPool"]

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


class _Worker:
    __slots__ = ("channel", "exited", "pid", "proc", "reader", "ready", "seq", "slot", "started")

    def __init__(self, slot: int, proc: subprocess.Popen[bytes], channel: Channel) -> None:
        self.slot = slot
        self.proc = proc
        self.pid = proc.pid
        self.channel = channel
        self.ready = asyncio.get_running_loop().create_future()
        self.exited = asyncio.Event()
        self.seq = -1
        self.started = time.monotonic()
        self.reader: asyncio.Task[None] | None = None


class WorkerPool:
    """``count`` proxy-only worker processes of this master."""

    def __init__(
        self,
        count: int,
        conf_path: str | None,
        overrides: dict[str, str],
        error_log: ErrorLog,
        health: Any = None,
    ) -> None:
        self.count = count
        self.conf_path = conf_path
        self.overrides = dict(overrides)
        self.log = error_log
        self.health = health  # the master's HealthRegistry: new workers get its unavailable targets
        self.workers: dict[int, _Worker] = {}
        self.seq = 0
        self._latest: bytes | None = None
        self._settings_reload = False
        self._stopping = False
        self._changed = asyncio.Event()
        self._stats: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._stats_id = 0
        self._failures: dict[int, int] = {}
        self._respawns: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ configuration
    def publish(self, version: int, config: Any) -> None:
        """A new snapshot is live in the master: send its export to every worker."""
        self.seq += 1
        reload, self._settings_reload = self._settings_reload, False
        self._latest = encode("config", seq=self.seq, version=version, config=config, settings_reload=reload)
        for worker in self.workers.values():
            worker.channel.send_raw(self._latest)

    def reload_settings_next(self) -> None:
        """The next ``publish`` tells workers to re-read the configuration file and certificate files (SIGHUP)."""
        self._settings_reload = True

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

    # ------------------------------------------------------------------ health
    def push_health(self, upstream_id: str, target: Any) -> None:
        frame = self._health_frame(upstream_id, target)
        for worker in self.workers.values():
            if worker.ready.done():
                worker.channel.send_raw(frame)

    @staticmethod
    def _health_frame(upstream_id: str, target: Any) -> bytes:
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
    def _command(self, fd: int) -> list[str]:
        args = [sys.executable, "-m", "gateway.runtime.worker", "--fd", str(fd), "--master", str(os.getpid())]
        if self.conf_path:
            args += ["--conf", self.conf_path]
        if self.overrides:
            args += ["--overrides", json.dumps(self.overrides)]
        return args

    async def _spawn(self, slot: int) -> _Worker:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            proc = subprocess.Popen(self._command(child.fileno()), pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL)
        finally:
            child.close()
        channel = await Channel.open(parent)
        worker = _Worker(slot, proc, channel)
        self.workers[slot] = worker
        if self._latest is not None:
            channel.send_raw(self._latest)
        worker.reader = asyncio.get_running_loop().create_task(self._read(worker), name=f"worker {worker.pid}")
        self.log.notice(f"start worker process {worker.pid}")
        return worker

    async def start(self, timeout: float) -> None:
        """Spawn the workers and wait until each serves (raises ``RuntimeError`` if one dies or times out)."""
        workers = [await self._spawn(slot) for slot in range(1, self.count)]
        try:
            async with asyncio.timeout(timeout):
                for worker in workers:
                    exited = asyncio.ensure_future(worker.exited.wait())
                    try:
                        await asyncio.wait({worker.ready, exited}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        exited.cancel()
                    if not worker.ready.done():
                        raise RuntimeError(
                            f"worker process {worker.pid} {_exit_text(worker.proc.returncode)} during start-up "
                            "(see the error log)"
                        )
        except TimeoutError:
            raise RuntimeError(f"worker processes not ready after {timeout:.0f}s") from None

    async def _read(self, worker: _Worker) -> None:
        channel = worker.channel
        while True:
            message = await channel.receive()
            if message is None:
                break
            kind = message.get("type")
            if kind in ("ready", "ack"):
                worker.seq = max(worker.seq, int(message.get("seq", -1)))
                if kind == "ready" and not worker.ready.done():
                    worker.ready.set_result(None)
                    self._sync_health(worker)
                self._notify()
            elif kind == "stats":
                future = self._stats.get(int(message.get("id", -1)))
                if future is not None and not future.done():
                    future.set_result(message)
        channel.close()
        loop = asyncio.get_running_loop()
        code = await loop.run_in_executor(None, _wait, worker.proc)
        worker.exited.set()
        if self.workers.get(worker.slot) is worker:
            del self.workers[worker.slot]
        self._notify()
        if self._stopping:
            self.log.notice(f"worker process {worker.pid} {_exit_text(code)}")
            return
        self.log.log("alert", f"worker process {worker.pid} {_exit_text(code)}")
        lived = time.monotonic() - worker.started
        failures = 0 if lived >= STABLE_AFTER else self._failures.get(worker.slot, 0) + 1
        self._failures[worker.slot] = failures
        delay = min(BACKOFF_MAX, BACKOFF_MIN * (2 ** max(0, failures - 1))) if failures else 0.0
        task = loop.create_task(self._respawn(worker.slot, delay))
        self._respawns.add(task)
        task.add_done_callback(self._respawns.discard)

    async def _respawn(self, slot: int, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        if self._stopping or slot in self.workers:
            return
        try:
            await self._spawn(slot)
        except OSError as exc:
            self.log.log("alert", f"could not respawn a worker process: {exc}")

    # ------------------------------------------------------------------ stats, signals
    def pids(self) -> list[int]:
        return [w.pid for w in self.workers.values() if not w.exited.is_set()]

    async def stats(self, timeout: float = 1.0) -> list[dict[str, Any]]:
        """Every ready worker's ``{pid, counters}`` (the ones that answer within ``timeout``)."""
        loop = asyncio.get_running_loop()
        asked: list[asyncio.Future[dict[str, Any]]] = []
        for worker in self.workers.values():
            if not worker.ready.done() or worker.exited.is_set():
                continue
            self._stats_id += 1
            future: asyncio.Future[dict[str, Any]] = loop.create_future()
            self._stats[self._stats_id] = future
            worker.channel.send("stats", id=self._stats_id)
            asked.append(future)
        if not asked:
            return []
        done, _ = await asyncio.wait(asked, timeout=timeout)
        for key in [k for k, f in self._stats.items() if f in asked]:
            del self._stats[key]
        return [f.result() for f in done]

    def signal(self, sig: signal.Signals) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except OSError:
                pass

    # ------------------------------------------------------------------ stop
    def begin_stop(self) -> None:
        """Tell every worker to stop accepting and drain (no respawn from now on)."""
        self._stopping = True
        for task in list(self._respawns):
            task.cancel()
        for worker in self.workers.values():
            worker.channel.send("stop")

    async def stop(self, timeout: float) -> None:
        """``begin_stop`` then wait for the workers (bounded); kill what is left."""
        self.begin_stop()
        workers = list(self.workers.values())
        waits = [asyncio.ensure_future(w.exited.wait()) for w in workers]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=timeout)
            for future in pending:
                future.cancel()
        for worker in workers:
            if worker.proc.poll() is None:
                self.log.warn(f"worker process {worker.pid} still running after {timeout:.0f}s; killing it")
                worker.proc.kill()
        loop = asyncio.get_running_loop()
        for worker in workers:
            await loop.run_in_executor(None, _wait, worker.proc)
            if worker.reader is not None:
                try:
                    async with asyncio.timeout(1.0):
                        await worker.reader
                except (TimeoutError, asyncio.CancelledError):
                    worker.reader.cancel()


def _wait(proc: subprocess.Popen[bytes]) -> int | None:
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
