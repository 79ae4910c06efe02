"""A proxy-only worker process: ``main(["--fd", N, "--conf", F, "--overrides", JSON])`` in a fork of the zygote.

Forked by the zygote (``gateway.runtime.zygote``) at the master's request (``gateway.runtime.workers``), never
started by hand. It loads the settings as the master did (same file, same ``KONG_*`` environment, same overrides;
read afresh, so a worker generation started by SIGHUP sees the new file), opens the same log files (appending, its
own pid in each error-log line, as nginx workers do), waits for the first ``config`` message, builds its snapshot
with the master's builder (``gateway.runtime.building``), serves the proxy listeners on the sockets the master bound
for its slot (the ``ssl`` ones on the blank contexts inherited from the zygote: shared ticket keys) and answers
``ready``. Each
later ``config`` is built (reusing the previous snapshot's compiled certificates) and answered ``ack``.
``health`` messages set a target's health (the master runs the active probes; passive health is counted here).
``stop``, SIGTERM/SIGINT, or the channel's EOF (the master is gone): stop accepting (answering ``closed``), drain,
exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sys
from typing import TYPE_CHECKING

from gateway.observability.accesslog import AccessLog, open_access_log
from gateway.observability.errorlog import ErrorLog
from gateway.runtime import building
from gateway.runtime.channel import Channel, Message, int_field
from gateway.settings import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from gateway.proxy.state import ProxyState
    from gateway.runtime.snapshot import Snapshot
    from gateway.store.interface import Config
    from gateway.tls.served.listener import ServerTlsConfig
    from gateway.upstream.healthcheck import HealthRegistry

__all__ = ["Worker", "main"]

DRAIN_TIMEOUT = 10.0


class Worker:
    def __init__(self, settings: Settings, channel: Channel, listening: list[tuple[int, socket.socket]]) -> None:
        self.settings = settings
        #: (position in ``proxy_listen`` then ``stream_listen``, socket): this slot's listening sockets, bound and kept
        #: by the master
        self.listening = listening
        self.channel = channel
        self.error_log = ErrorLog(settings.path(settings.proxy_error_log), settings.log_level)
        self.access_log: AccessLog = open_access_log(settings.proxy_access_log, settings.path, with_request_id=True)
        self.server_tls: ServerTlsConfig | None = None
        self.proxy_state: ProxyState | None = None
        self.health: HealthRegistry | None = None
        self.servers: list[asyncio.base_events.Server] = []
        self._stop = asyncio.Event()
        self._tick: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ start
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self.error_log.loop_exception)
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        loop.add_signal_handler(signal.SIGINT, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: None)  # the master reloads, then tells us
        loop.add_signal_handler(signal.SIGUSR1, self.reopen_logs)
        try:
            self.server_tls = building.load_server_tls(self.settings, self.error_log)
        except (ConfigError, OSError) as exc:
            self.error_log.log("emerg", f"[worker] cannot load the SSL certificates: {exc}")
            return 1
        first = await self.channel.receive()
        while first is not None and first.get("type") != "config":
            if first.get("type") == "stop":
                return 0
            first = await self.channel.receive()
        if first is None:
            return 0
        from gateway.proxy.state import ProxyState
        from gateway.upstream.healthcheck import HealthRegistry

        snapshot = await self._build(_config_of(first))
        self.proxy_state = proxy_state = ProxyState(self.settings, self.error_log, self.access_log, snapshot)
        self.health = health = HealthRegistry(self.error_log, proxy_state.dns, active=False)
        await health.install(snapshot)
        from gateway.stream.listener import StreamFront

        # positions as the master bound them: proxy_listen, then stream_listen (whose ssl contexts come after)
        factories = [proxy_state.protocol_factory(listener) for listener in self.settings.proxy_listen]
        stream = StreamFront(proxy_state)
        factories += [stream.protocol_factory(listener) for listener in self.settings.stream_listen]
        for position, listener in enumerate((*self.settings.proxy_listen, *self.settings.stream_listen)):
            sockets = [sock for index, sock in self.listening if index == position]
            try:
                if not sockets:
                    raise OSError(f"no listening socket from the master for {listener.host}:{listener.port}")
                self.servers += await building.serve_sockets(listener, sockets, factories[position])
            except OSError as exc:
                self.error_log.log("emerg", f"[worker] could not listen on {listener.host}:{listener.port}: {exc}")
                print(f"Error: could not listen on {listener.host}:{listener.port}: {exc.strerror}", file=sys.stderr)
                return 1
        self.channel.send("ready", pid=os.getpid(), seq=first.get("seq", 0))
        self._tick = loop.call_later(1.0, self._on_tick)
        receiving = loop.create_task(self._receive())
        await self._stop.wait()
        receiving.cancel()
        await self.shutdown()
        return 0

    async def _build(self, config: Config) -> Snapshot:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            None, building.build, config, self.settings, self.proxy_state, self.server_tls, self.error_log
        )

    # ------------------------------------------------------------------ messages
    async def _receive(self) -> None:
        while True:
            message = await self.channel.receive()
            if message is None:  # the master is gone: drain and exit, as an orphaned nginx worker would not linger
                self.error_log.notice("[worker] master process gone, exiting")
                self._stop.set()
                return
            kind = message.get("type")
            if kind == "config":
                await self._configure(message)
            elif kind == "health":
                port = int_field(message, "port")
                if self.health is not None and port is not None:
                    self.health.apply_remote(
                        str(message.get("upstream")),
                        str(message.get("ip")),
                        port,
                        str(message.get("hostname")),
                        bool(message.get("healthy")),
                    )
            elif kind == "stats":
                counters = building.proxy_counters(self.proxy_state)
                extra: dict[str, object] = {}
                if message.get("metrics"):
                    from gateway.plugins.prometheus.exporter import process_share

                    extra["metrics"] = process_share()
                self.channel.send("stats", id=message.get("id"), pid=os.getpid(), counters=counters, **extra)
            elif kind == "stop":
                self._stop.set()
                return

    async def _configure(self, message: Message) -> None:
        try:
            snapshot = await self._build(_config_of(message))
        except Exception as exc:  # keep serving the previous snapshot, as the master does
            self.error_log.error(f"[runtime] could not rebuild the configuration: {exc!r}")
        else:
            if self.health is not None:
                try:
                    await self.health.install(snapshot)
                except Exception as exc:
                    self.error_log.error(f"[runtime] could not prepare the configuration: {exc!r}")
            if self.proxy_state is not None:
                self.proxy_state.snapshot = snapshot
        self.channel.send("ack", seq=message.get("seq", 0))

    # ------------------------------------------------------------------ housekeeping, stop
    def _on_tick(self) -> None:
        self.access_log.flush()
        if not self._stop.is_set():
            self._tick = asyncio.get_running_loop().call_later(1.0, self._on_tick)

    def reopen_logs(self) -> None:
        self.error_log.reopen()
        self.access_log.reopen()

    async def shutdown(self) -> None:
        for server in self.servers:
            server.close()  # our copy of the slot's sockets; the master's keeps the queue for our successor
        self.channel.send("closed")  # no longer accepting: a SIGHUP's new generation now has the slot alone
        if self.proxy_state is not None:
            self.proxy_state.begin_shutdown()
            if not await self.proxy_state.wait_idle(DRAIN_TIMEOUT):
                self.error_log.warn(f"[runtime] in-flight requests still open after {DRAIN_TIMEOUT:.0f}s; closing")
            self.proxy_state.close()
        if self.health is not None:
            await self.health.close()
        if self._tick is not None:
            self._tick.cancel()
        self.access_log.close()
        self.channel.close()


def _config_of(message: Message) -> Config:
    """The store export a ``config`` message carries; ``ValueError`` when it carries none (a build failure: the
    previous snapshot stays, as for any other)."""
    config = message.get("config")
    if not isinstance(config, dict):
        raise ValueError(f"a config message without a configuration (seq {message.get('seq')})")
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gateway-worker")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--conf", default=None)
    parser.add_argument("--overrides", default="{}")
    parser.add_argument("--listen-fds", default="", help="the slot's listening sockets, comma-separated fds")
    parser.add_argument("--listen-map", default="", help="for each of those fds, its position in proxy_listen")
    args = parser.parse_args(argv)
    overrides = {str(k): str(v) for k, v in json.loads(args.overrides).items()}
    try:
        settings = load_settings(args.conf, overrides=overrides)
    except ConfigError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    sock = socket.socket(fileno=args.fd)
    fds = [int(fd) for fd in args.listen_fds.split(",") if fd]
    positions = [int(p) for p in args.listen_map.split(",") if p]
    listening = [(position, socket.socket(fileno=fd)) for position, fd in zip(positions, fds, strict=True)]

    async def run() -> int:
        channel = await Channel.open(sock)
        return await Worker(settings, channel, listening).run()

    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return int(asyncio.run(run()))
    return int(uvloop.run(run()))
