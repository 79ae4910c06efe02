"""The gateway process: start, serve, reload, drain, stop.

Order of start-up (each step fails with a message naming what is wrong, before anything listens):
prefix directories -> the pid file (``runtime/pidfile.py``: a live gateway on this prefix refuses the start with
Kong's ``Kong is already running in <prefix>`` before anything is touched; a stale file is taken over with a
notice) -> logs, and the start-up warnings, on stderr too (``runtime/notices.py``) -> enabled plugins (the
``plugins`` setting) -> store (SQLite file, or memory + the declarative file in DB-less mode) -> no stored plugin
that would never run (Kong's ``<name> plugin is in use but not enabled``; an older store may hold one) -> first
snapshot -> Status API listeners (``status_listen``: ``/status/ready`` answers 503 until the processes serving
traffic have their first snapshot) -> proxy listeners (or, with ``worker_processes`` > 1, the worker processes, each
ready) -> Admin API listeners. A listener that cannot be bound fails in one wording whatever its setting, naming
the setting and its ``KONG_*`` variable (``runtime/listen_errors.py``). The Admin API opens last, so ``GET /status``
answering 200 means the proxy is already accepting: scripts wait on it for readiness.

Signals (Kong runs nginx in the foreground in containers; these are nginx's meanings where they exist):
- SIGTERM / SIGINT: stop accepting, let in-flight requests finish (up to ``drain_timeout``), exit 0.
- SIGHUP: re-read the configuration file's certificate settings and, in DB-less mode, the declarative file;
  rebuild the snapshot. Listeners are not rebound (say so in the log if they changed), but the ``ssl``
  listeners' base contexts are rebuilt (with workers: a new generation of workers is started and the old one
  drains, as nginx does), so new ``ssl_*`` settings and certificate files apply to new handshakes.
- SIGUSR1: reopen log files (log rotation).

Processes (``worker_processes``; ``auto``, the default, = the number of cores): with 1, this process is the whole
gateway. With N > 1 this process is nginx's master: store, Admin API, snapshots and active health checks, but no
proxy listener; N proxy-only workers (``runtime/workers.py``, forked by a zygote so that they share session-ticket
keys) serve the traffic on ``SO_REUSEPORT`` listeners. They start before the Admin API opens (so ``/status``
answering still means the proxy accepts). Admin API writes, ``POST /config`` and SIGHUP return once the master's
snapshot and every live worker carry the new configuration (``settle``, bounded by ``SETTLE_TIMEOUT``). SIGTERM
stops the workers too; SIGUSR1 is forwarded to them.

Downstream TLS inputs that come from files (``ssl_cert``/``ssl_cert_key``, or the generated default pair) are read
into a ``ServerTlsConfig`` at start and on SIGHUP only; every snapshot build reuses it, and the previous
snapshot, so Admin API writes recompile only the certificates they changed and never touch the disk.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.admin.server import AdminApp, start_admin_server
from gateway.admin.status import StatusApp, status_listener
from gateway.entities.plugin_configs import enable_plugins, get_plugin, registered_plugins, runs_note
from gateway.observability.accesslog import AccessLog, open_access_log
from gateway.observability.errorlog import ErrorLog
from gateway.proxy.state import ProxyState
from gateway.runtime import building, pidfile, titles
from gateway.runtime.listen_errors import listen_failure
from gateway.runtime.manager import SnapshotManager
from gateway.runtime.notices import announce, startup_warnings
from gateway.runtime.observing import Observer
from gateway.runtime.tls_view import TlsSnapshots
from gateway.runtime.workers import ListenError, WorkerPool
from gateway.settings import ConfigError, Listener, Settings, load_settings
from gateway.store import open_database
from gateway.store.declarative import parse_text
from gateway.store.interface import Config, Row, Store
from gateway.stream.listener import StreamFront
from gateway.upstream.health import enable_tcp_probes
from gateway.upstream.healthcheck import HealthRegistry

if TYPE_CHECKING:
    from gateway.runtime.snapshot import Snapshot
    from gateway.tls.served.listener import ServerTlsConfig

__all__ = ["Gateway", "StartupError", "load_declarative_file"]

DRAIN_TIMEOUT = 10.0  # seconds, as `kong quit`'s default timeout
SETTLE_TIMEOUT = 5.0  # seconds an Admin API write waits for every process to serve it
WORKERS_START_TIMEOUT = 30.0


class StartupError(RuntimeError):
    """The gateway cannot start; the message says why and is printed as is."""


def load_declarative_file(path: str) -> dict[str, object]:
    """Read a kong.yml (YAML or JSON, JSON being YAML) into a dict, or raise ``StartupError``."""
    try:
        with open(path, encoding="utf-8") as handle:
            return parse_text(handle)
    except OSError as exc:
        raise StartupError(f"failed loading declarative config file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise StartupError(str(exc)) from None


def _stored_plugins_message(rows: list[Row], settings: Settings) -> str:
    """Kong's message, then every offending row (name, id, scope) and what to do about it."""
    lines = [
        f"error building initial plugins: {rows[0].get('name')} plugin is in use but not enabled ({runs_note()})",
    ]
    where = (
        f"the database {settings.path(settings.sqlite_database)}"
        if settings.database != "off"
        else "the declarative configuration"
    )
    lines.append(f"{where} holds {len(rows)} plugin(s) that would never run:")
    for row in rows:
        scope = [f"{fk} {row[fk]['id']}" for fk in ("route", "service", "consumer") if isinstance(row.get(fk), dict)]
        lines.append(f"  {row.get('name')} (id {row.get('id')}, {', '.join(scope) or 'global'})")
    ids = ", ".join(f"'{row.get('id')}'" for row in rows)
    if settings.database != "off":
        path = settings.path(settings.sqlite_database)
        lines.append(f'delete them, then start again: sqlite3 {path} "DELETE FROM plugins WHERE id IN ({ids})"')
    runnable = sorted({str(row.get("name")) for row in rows} & set(registered_plugins()))
    if runnable:
        now = ", ".join(settings.plugins) or "off"
        lines.append(f"or enable {', '.join(runnable)} in the 'plugins' setting (now: {now})")
    return "\n".join(lines)


def _format_entity_error(exc: Exception) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return str(message)


class Gateway:
    """One gateway process. ``await start()``, then ``await wait_stopped()``."""

    def __init__(self, settings: Settings, conf_path: str | None = None, overrides: dict[str, str] | None = None):
        self.settings = settings
        self.conf_path = conf_path
        self.overrides = dict(overrides or {})
        self.error_log = ErrorLog(None, settings.log_level)
        self.access_log: AccessLog | None = None
        self.admin_access_log: AccessLog | None = None
        self.db: Store | None = None
        self.proxy_state: ProxyState | None = None
        self.snapshots: SnapshotManager[Snapshot] | None = None
        self.proxy_servers: list[asyncio.base_events.Server] = []
        self.admin_servers: list[asyncio.base_events.Server] = []
        self.status_servers: list[asyncio.base_events.Server] = []
        self.admin_app: AdminApp | None = None
        self.observer = Observer(self)
        self._stopped = asyncio.Event()
        self._stopping = False
        self._claimed = False  # the prefix's pid file is ours: there is something to stop and release
        self._tick: asyncio.TimerHandle | None = None
        self.server_tls: ServerTlsConfig | None = None  # when an ssl listener is configured
        self.health: HealthRegistry | None = None  # target health and probes, across snapshots
        self.worker_count = building.worker_count(settings)
        self.workers: WorkerPool | None = None  # with worker_processes > 1
        self.stream: StreamFront | None = None  # the stream_listen listeners of a single-process gateway

    # ------------------------------------------------------------------------------------------ start
    async def start(self) -> None:
        settings = self.settings
        self._prepare_prefix()
        stale = self._claim_prefix()
        self.error_log = ErrorLog(settings.path(settings.proxy_error_log), settings.log_level)
        asyncio.get_running_loop().set_exception_handler(self.error_log.loop_exception)
        self.access_log = open_access_log(settings.proxy_access_log, settings.path, with_request_id=True)
        self.admin_access_log = open_access_log(settings.admin_access_log, settings.path, with_request_id=False)
        if stale is not None:
            announce(self.error_log, "notice", f"[runtime] {stale.notice()}")
        for warning in startup_warnings(settings):
            announce(self.error_log, "warn", f"[config] {warning.text}")

        try:
            enable_plugins(settings.enabled_plugins)
        except ValueError as exc:  # the settings refuse such a name first; kept for a Settings built in code
            raise StartupError(str(exc)) from None
        self.db = db = self._open_store()
        self._check_stored_plugins(db)
        try:
            self.server_tls = self._load_server_tls(settings)
        except ConfigError as exc:
            raise StartupError(str(exc)) from None
        except OSError as exc:  # the generated default pair could not be written under the prefix
            raise StartupError(f"cannot prepare the default SSL certificate: {exc}") from None
        try:
            version = db.version
            first_config = db.export()
            first = self._build_snapshot(first_config, settings)
        except Exception as exc:
            raise StartupError(f"could not build the configuration: {exc}") from exc
        self.proxy_state = proxy_state = ProxyState(settings, self.error_log, self.access_log, first)
        if settings.stream_listen:
            enable_tcp_probes()  # Kong runs ``tcp`` active checks in its stream subsystem
        self.health = health = HealthRegistry(self.error_log, proxy_state.dns)
        await health.install(first)
        self.snapshots = SnapshotManager(
            db, settings, proxy_state, self.error_log, self._build_snapshot, prepare=health.install
        )
        self.snapshots.built_version = version
        loop = asyncio.get_running_loop()
        self.snapshots.attach(loop)

        self.admin_app = self._admin_app(db)
        await self._start_status(self.admin_app)
        if self.worker_count > 1:
            await self._start_workers(version, first_config)
        else:
            await self._listen_all("proxy_listen", proxy_state.protocol_factory)
            self.stream = StreamFront(proxy_state)
            await self._listen_all("stream_listen", self.stream.protocol_factory)
        await self._start_admin()
        self._install_signals(loop)
        self._tick = loop.call_later(1.0, self._on_tick)
        listening = ", ".join(f"{ls.host}:{ls.port}{' ssl' if ls.ssl else ''}" for ls in settings.proxy_listen)
        self.error_log.notice(f"gateway started, proxy listening on {listening}, database={settings.database}")
        if settings.stream_listen:
            streams = ", ".join(f"{ls.host}:{ls.port}{' ssl' if ls.ssl else ''}" for ls in settings.stream_listen)
            self.error_log.notice(f"stream listening on {streams}")

    def _load_server_tls(self, settings: Settings) -> ServerTlsConfig | None:
        """The ``ssl`` listeners' profile and default certificates (read or generated), or None without any."""
        return building.load_server_tls(settings, self.error_log)

    def _build_snapshot(self, config: Config, settings: Settings) -> Snapshot:
        """The snapshot builder the manager runs (on the store's thread); the workers run the same one."""
        return building.build(config, settings, self.proxy_state, self.server_tls, self.error_log)

    def _build_full_snapshot(self, config: Config) -> Snapshot:  # a master's ``/tls`` endpoints (``tls_view``)
        return building.build_full(config, self.settings, self.server_tls)

    async def _start_workers(self, version: int, config: Config) -> None:
        listeners = (*self.settings.proxy_listen, *self.settings.stream_listen)  # positions: proxy first
        pool = WorkerPool(
            self.worker_count,
            self.conf_path,
            self.overrides,
            self.error_log,
            health=self.health,
            tls_contexts=sum(1 for listener in listeners if listener.ssl),
            listeners=listeners,
        )
        try:
            for listener in listeners:
                try:
                    building.ensure_free(listener)
                except OSError as exc:
                    raise ListenError(listener, exc) from None
            pool.bind()
        except ListenError as exc:
            setting = "proxy_listen" if exc.listener in self.settings.proxy_listen else "stream_listen"
            configured = getattr(self.settings, setting)
            raise StartupError(listen_failure(setting, configured, exc.listener, exc)) from None
        titles.master()
        self.workers = pool
        pool.publish(version, config)
        assert self.snapshots is not None
        self.snapshots.on_built = pool.publish
        if self.health is not None:
            self.health.on_target = pool.push_health
        try:
            await pool.start(WORKERS_START_TIMEOUT)
        except (RuntimeError, OSError) as exc:
            raise StartupError(str(exc)) from None

    async def settle(self, version: int) -> None:
        """Until ``version`` is live in this process and in every live worker (bounded; a warning on timeout)."""
        if self.snapshots is None:
            return
        try:
            async with asyncio.timeout(SETTLE_TIMEOUT):
                await self.snapshots.wait_built(version)
                if self.workers is not None:
                    await self.workers.wait_synced()
        except TimeoutError:
            self.error_log.warn(
                f"[runtime] configuration version {version} not live in every process after {SETTLE_TIMEOUT:.0f}s"
            )

    def _prepare_prefix(self) -> None:
        prefix = self.settings.prefix
        try:
            for sub in ("", "logs", "pids"):
                os.makedirs(os.path.join(prefix, sub), exist_ok=True)
        except OSError as exc:
            raise StartupError(f"cannot create prefix directory {prefix}: {exc.strerror}") from None
        if not os.access(prefix, os.W_OK):
            raise StartupError(f"prefix directory {prefix} is not writable")

    def _open_store(self) -> Store:
        settings = self.settings
        if settings.database == "off":
            db = open_database("off", None)
            if settings.declarative_config:
                data = load_declarative_file(settings.declarative_config)
                try:
                    db.replace_all(data)
                except Exception as exc:
                    raise StartupError(
                        f"failed loading declarative config file {settings.declarative_config}: "
                        f"{_format_entity_error(exc)}"
                    ) from exc
            return db
        path = settings.path(settings.sqlite_database)
        try:
            return open_database("sqlite", path)
        except Exception as exc:
            raise StartupError(f"cannot open the database {path}: {exc}") from exc

    def _check_stored_plugins(self, db: Store) -> None:
        """Refuse to start over a stored plugin that would never run: Kong fails the same way when building its
        plugins iterator (``error building initial plugins: <name> plugin is in use but not enabled``). A store
        written before such names were refused, or with a wider ``plugins`` setting, can hold one."""
        rows = [row for row in db.dao("plugins").all() if get_plugin(row.get("name")) is None]
        if rows:
            raise StartupError(_stored_plugins_message(rows, self.settings))

    async def _listen_all(self, setting: str, factory_of: Callable[[Listener], building.ProtocolFactory]) -> None:
        """Bind every listener of ``setting`` (one process serving traffic), failing in the one port-in-use wording."""
        listeners = getattr(self.settings, setting)
        for listener in listeners:
            try:
                server = await building.listen(listener, factory_of(listener))
            except OSError as exc:
                raise StartupError(listen_failure(setting, listeners, listener, exc)) from None
            self.proxy_servers.append(server)

    def _admin_app(self, db: Store) -> AdminApp:
        assert self.admin_access_log is not None
        return AdminApp(
            db,
            self.settings,
            self.error_log,
            self.admin_access_log,
            self._status,
            health_view=self.health,
            settle=self.settle,
            pids=self._pids,
            metrics=self.observer.scrape if get_plugin("prometheus") is not None else None,
            tls_snapshot=TlsSnapshots(
                self.proxy_state, building.serves_traffic(self.settings), db, self._build_full_snapshot
            ),
        )

    async def _start_status(self, admin: AdminApp) -> None:
        """The Status API listeners (``status_listen``), before the proxy: ``/status/ready`` says when it serves."""
        app = StatusApp(admin, self.observer.routers_ready, admin.metrics)
        for listener in self.settings.status_listen:
            try:
                self.status_servers.append(await start_admin_server(app, status_listener(listener)))
            except OSError as exc:
                raise StartupError(
                    listen_failure("status_listen", self.settings.status_listen, listener, exc)
                ) from None

    @property
    def node_id(self) -> str:
        """This node's id (``GET /``, ``kong_node_info``)."""
        assert self.admin_app is not None
        return self.admin_app.node.node_id

    async def _start_admin(self) -> None:
        app = self.admin_app
        assert app is not None
        for listener in self.settings.admin_listen:
            try:
                self.admin_servers.append(await start_admin_server(app, listener))
            except OSError as exc:
                raise StartupError(listen_failure("admin_listen", self.settings.admin_listen, listener, exc)) from None

    async def _status(self) -> dict[str, int]:
        """The proxy counters of every process, summed (``GET /status``)."""
        totals = building.proxy_counters(self.proxy_state)
        if self.workers is not None:
            for reply in await self.workers.stats():
                building.add_counters(totals, reply)
        return totals

    def _pids(self) -> list[int]:
        """The processes serving traffic (``GET /``'s ``pids.workers``, ``/status``'s ``workers_lua_vms``): the live
        workers, or this process when it is the whole gateway."""
        return self.workers.pids() if self.workers is not None else [os.getpid()]

    def _claim_prefix(self) -> pidfile.Stale | None:
        """Write the pid file first (``runtime/pidfile.py``): a live gateway on this prefix refuses the start."""
        try:
            stale = pidfile.claim(self.settings.prefix)
        except pidfile.AlreadyRunning as exc:
            raise StartupError(str(exc)) from None
        except OSError as exc:
            raise StartupError(f"cannot write the pid file {pidfile.pid_path(self.settings.prefix)}: {exc}") from None
        self._claimed = True
        return stale

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.reload()))
        loop.add_signal_handler(signal.SIGUSR1, self._on_usr1)

    def _on_tick(self) -> None:
        """Once a second: flush buffered access logs."""
        for log in (self.access_log, self.admin_access_log):
            if log is not None:
                log.flush()
        if not self._stopping:
            self._tick = asyncio.get_running_loop().call_later(1.0, self._on_tick)

    # ------------------------------------------------------------------------------------------ reload
    async def reload(self) -> None:
        """SIGHUP: re-read settings (certificate files) and, DB-less, the declarative file."""
        self.error_log.notice("signal 1 (SIGHUP) received, reconfiguring")
        try:
            fresh = load_settings(self.conf_path, overrides=self.overrides)
        except ConfigError as exc:
            self.error_log.error(f"[config] reload failed, keeping the running configuration: {exc}")
            return
        listeners = ("proxy_listen", "stream_listen", "admin_listen", "status_listen")
        if any(getattr(fresh, key) != getattr(self.settings, key) for key in listeners):
            self.error_log.warn("[config] listener changes need a restart; keeping the current listeners")
            fresh = fresh.replace(stream_listen=self.settings.stream_listen)  # the stream router follows the listeners
        if fresh.plugins != self.settings.plugins:  # the enabled set is fixed at start, as the stored rows were checked
            self.error_log.warn("[config] plugins changes need a restart; keeping the enabled plugins")
            fresh = fresh.replace(plugins=self.settings.plugins)
        try:
            # the running listeners decide whether TLS is served (they are not rebound); the rest is new
            server_tls = self._load_server_tls(fresh.replace(proxy_listen=self.settings.proxy_listen))
        except (ConfigError, OSError) as exc:
            self.error_log.error(f"[config] reload failed, keeping the running configuration: {exc}")
            return
        self.server_tls = server_tls
        self.settings = fresh
        assert self.snapshots is not None
        self.snapshots.set_settings(fresh)
        db = self.db
        if db is not None and fresh.database == "off" and fresh.declarative_config:
            try:
                data = load_declarative_file(fresh.declarative_config)
                await db.run(db.replace_all, data)
            except Exception as exc:
                self.error_log.error(
                    f"[config] reload of {fresh.declarative_config} failed, keeping the running configuration: "
                    f"{_format_entity_error(exc)}"
                )
        self.snapshots.request_rebuild()
        await self.snapshots.settled()
        if self.proxy_state is not None:
            self.proxy_state.refresh_tls()
        if self.stream is not None:
            self.stream.refresh_tls()
        if self.workers is not None:
            await self.workers.regenerate(WORKERS_START_TIMEOUT)
            await self.settle(self.snapshots.built_version)
        self.error_log.notice("reconfiguration done")

    def _on_usr1(self) -> None:
        self.reopen_logs()
        if self.workers is not None:
            self.workers.signal(signal.SIGUSR1)

    def reopen_logs(self) -> None:
        self.error_log.reopen()
        for log in (self.access_log, self.admin_access_log):
            if log is not None:
                log.reopen()

    # ------------------------------------------------------------------------------------------ stop
    def request_stop(self) -> None:
        if not self._stopping:
            self._stopping = True
            asyncio.get_running_loop().create_task(self.stop())

    async def stop(self, drain_timeout: float = DRAIN_TIMEOUT) -> None:
        """Stop accepting, drain in-flight requests, close everything. Idempotent. A start refused before it claimed
        the prefix (another gateway runs there, or the prefix cannot be made) has nothing to stop: that gateway's
        logs and pid file are left alone."""
        self._stopping = True
        if not self._claimed:
            self._stopped.set()
            return
        self.error_log.notice("gracefully shutting down")
        if self.workers is not None:
            self.workers.begin_stop()  # they drain in parallel with this process
        for server in self.proxy_servers + self.admin_servers + self.status_servers:
            server.close()
        if self.proxy_state is not None:
            self.proxy_state.begin_shutdown()
            drained = await self.proxy_state.wait_idle(drain_timeout)
            if not drained:
                self.error_log.warn(f"[runtime] in-flight requests still open after {drain_timeout:.0f}s; closing")
            self.proxy_state.close()
        if self.workers is not None:
            await self.workers.stop(drain_timeout + 5.0)
        if self.health is not None:
            await self.health.close()  # probe loops stop; no probe outlives the process's listeners
        if self._tick is not None:
            self._tick.cancel()
        for log in (self.access_log, self.admin_access_log):
            if log is not None:
                log.close()
        if self.db is not None:
            self.db.close()
        pidfile.release(self.settings.prefix)
        self.error_log.notice("exit")
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()
