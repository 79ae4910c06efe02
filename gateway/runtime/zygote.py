"""The zygote: a small process that forks the worker processes, so that they share session-ticket keys.

Why a zygote. nginx workers resume each other's TLS sessions because the master creates the ``SSL_CTX`` (and its
random ticket keys) and then forks them. The gateway's master cannot fork: it runs an event loop (uvloop), threads
and open client connections, none of which a child may inherit. So at start (``worker_processes`` > 1) the master
executes a fresh interpreter, ``python -m gateway.runtime.zygote``, which imports the worker code, creates one
blank server context per ``ssl`` listener (``gateway.tls.served.ticket_keys.prepare``) and then only waits: it never
runs a loop, never starts a thread, holds no client socket. Each worker is a ``fork()`` of it and configures the
blank contexts it inherited, so every worker of a generation encrypts and decrypts tickets with the same keys.
SIGHUP (``regenerate``) draws new keys for the next generation, as an nginx reload does.

Protocol (``gateway.runtime.channel`` framing, length-prefixed JSON):

- ``control`` socket, master -> zygote requests, one at a time, each answered on the same socket:
  ``spawn`` {argv} with the worker's channel fd and its slot's listening sockets attached (``SCM_RIGHTS``) ->
  ``spawned`` {pid};
  ``regenerate`` -> ``regenerated``.
- ``events`` socket, zygote -> master: ``ready`` {pid} once, then ``exit`` {pid, code} for every worker that ends
  (``code`` as ``subprocess``'s ``returncode``: negative for a signal).

The zygote ignores SIGINT, SIGTERM and SIGHUP: it lives exactly as long as the master's control socket, so a signal
sent to the whole process group (Ctrl-C, ``docker stop`` through a shell, ``kill -- -PGID``) stops the master and
the workers but leaves the zygote to report the workers' exits and then end with the master, instead of dying
first and looking like a fault. It leaves the workers to notice the master's end on their own channel.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Callable

from gateway.runtime.channel import Channel, Message, encode, int_field
from gateway.tls.served import ticket_keys

__all__ = ["Zygote", "main"]

_HEADER = 4
_MAX_CONTROL = 1024 * 1024
_MAX_FDS = 250  # a channel plus a slot's listening sockets (SCM_RIGHTS carries up to 253)


# ---------------------------------------------------------------------------------------------- zygote process side
def _recv_message(sock: socket.socket, header: bytes = b"") -> Message:
    """One framed message from a blocking socket (``header``: bytes of it already read); ``OSError`` if the
    stream ends or the frame is not a JSON object."""
    header += _recv_exactly(sock, _HEADER - len(header))
    size = int.from_bytes(header, "big")
    if size > _MAX_CONTROL:
        raise OSError("oversized message on the zygote's control socket")
    try:
        message = json.loads(_recv_exactly(sock, size))
    except ValueError:
        raise OSError("malformed message on the zygote's control socket") from None
    if not isinstance(message, dict):
        raise OSError("malformed message on the zygote's control socket")
    return message


def _read_request(sock: socket.socket) -> tuple[Message | None, list[int]]:
    """One request from the master and the fds attached to it; (None, []) when the master is gone."""
    header, fds, _flags, _addr = socket.recv_fds(sock, _HEADER, _MAX_FDS)
    try:
        if not header:
            raise OSError("end of the control stream")
        return _recv_message(sock, header), fds
    except OSError:
        for fd in fds:
            os.close(fd)
        return None, []


class _ZygoteProcess:
    """The zygote's own loop: requests on ``control``, child exits through the SIGCHLD wakeup pipe."""

    def __init__(self, control: socket.socket, events: socket.socket, tls_contexts: int) -> None:
        self.control = control
        self.events = events
        self.tls_contexts = tls_contexts
        self.children: set[int] = set()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)

    def run(self) -> int:
        from gateway.runtime import titles, worker  # imported once here, inherited by every fork

        del worker
        titles.zygote()
        for ignored in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # its end is the control socket's EOF
            signal.signal(ignored, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, lambda _sig, _frame: None)
        signal.set_wakeup_fd(self.wake_w)
        ticket_keys.prepare(self.tls_contexts)
        self._event("ready", pid=os.getpid())
        while True:
            try:
                readable, _, _ = select.select([self.control.fileno(), self.wake_r], [], [])
            except InterruptedError:  # pragma: no cover - PEP 475 retries select; kept for clarity
                continue
            if self.wake_r in readable:
                os.read(self.wake_r, 4096)
                self._reap()
            if self.control.fileno() in readable:
                message, fds = _read_request(self.control)
                if message is None:
                    return 0
                self._handle(message, fds)

    def _handle(self, message: Message, fds: list[int]) -> None:
        kind = message.get("type")
        if kind == "spawn" and fds:
            given = message.get("argv")
            argv = [str(a) for a in given] if isinstance(given, list) else []
            argv += ["--fd", str(fds[0]), "--listen-fds", ",".join(str(fd) for fd in fds[1:])]
            pid = os.fork()
            if pid == 0:
                self._become_worker(argv)  # never returns
            for fd in fds:  # the worker has them; no later worker may inherit them from here
                os.close(fd)
            self.children.add(pid)
            self.control.sendall(encode("spawned", pid=pid))
        elif kind == "regenerate":
            ticket_keys.prepare(self.tls_contexts)
            self.control.sendall(encode("regenerated"))
        else:
            for fd in fds:
                os.close(fd)
            self.control.sendall(encode("error", reason=f"unknown request {kind!r}"))

    def _become_worker(self, argv: list[str]) -> None:
        """In the forked child: drop the zygote's sockets and signal set-up, run a worker, never return."""
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGCHLD, signal.SIGHUP, signal.SIGTERM):
                signal.signal(sig, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self.control.close()
            self.events.close()
            os.close(self.wake_r)
            os.close(self.wake_w)
            from gateway.runtime import titles
            from gateway.runtime.worker import main as worker_main

            titles.worker()
            code = worker_main(argv)
        except BaseException as exc:  # a worker must never fall back into the zygote's loop
            print(f"Error: worker process failed: {exc!r}", file=sys.stderr)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children.discard(pid)
            self._event("exit", pid=pid, code=os.waitstatus_to_exitcode(status))

    def _event(self, kind: str, **fields: object) -> None:
        try:
            self.events.sendall(encode(kind, **fields))
        except OSError:
            pass  # the master is gone; the control socket's EOF ends the loop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gateway-zygote")
    parser.add_argument("--control", type=int, required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--tls-contexts", type=int, default=0)
    args = parser.parse_args(argv)
    control = socket.socket(fileno=args.control)
    events = socket.socket(fileno=args.events)
    return _ZygoteProcess(control, events, args.tls_contexts).run()


# ---------------------------------------------------------------------------------------------- master side
class Zygote:
    """The master's handle on its zygote: ``spawn`` a worker, ``regenerate`` ticket keys, hear of exits.

    Requests are blocking socket calls made in the default executor (a fork answers within milliseconds), one at a
    time; exits arrive on an asyncio channel and are handed to ``on_exit(pid, code)``. ``on_gone()`` is called if
    the zygote itself ends while the master still needs it.
    """

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        control: socket.socket,
        events: Channel,
        on_exit: Callable[[int, int | None], None],
        on_gone: Callable[[], None],
    ) -> None:
        self.proc = proc
        self.pid = proc.pid
        self._control = control
        self._events = events
        self._on_exit = on_exit
        self._on_gone = on_gone
        self._lock = asyncio.Lock()
        self._closing = False
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.get_running_loop().create_task(self._read_events(), name="zygote events")

    @classmethod
    async def start(
        cls,
        tls_contexts: int,
        on_exit: Callable[[int, int | None], None],
        on_gone: Callable[[], None],
        timeout: float,
    ) -> Zygote:
        control, control_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        events, events_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        fds = (control_child.fileno(), events_child.fileno())
        command = [
            sys.executable,
            "-m",
            "gateway.runtime.zygote",
            "--control",
            str(fds[0]),
            "--events",
            str(fds[1]),
            "--tls-contexts",
            str(tls_contexts),
        ]
        try:
            proc = subprocess.Popen(command, pass_fds=fds, stdin=subprocess.DEVNULL)
        finally:
            control_child.close()
            events_child.close()
        zygote = cls(proc, control, await Channel.open(events), on_exit, on_gone)
        try:
            async with asyncio.timeout(timeout):
                await zygote._ready
        except (TimeoutError, RuntimeError):
            zygote.close()
            code = proc.poll()
            raise RuntimeError(
                f"the worker zygote process {'exited with code ' + str(code) if code is not None else 'did not start'}"
                " (see the error log)"
            ) from None
        return zygote

    async def _read_events(self) -> None:
        while True:
            message = await self._events.receive()
            if message is None:
                break
            kind = message.get("type")
            if kind == "ready" and not self._ready.done():
                self._ready.set_result(None)
            elif kind == "exit":
                pid = int_field(message, "pid")
                if pid is not None:
                    self._on_exit(pid, int_field(message, "code"))
        self._events.close()
        if not self._ready.done():
            self._ready.set_exception(RuntimeError("zygote exited"))
            self._ready.exception()  # retrieved here: start() reports it with the exit code
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, _wait, self.proc)
        if not self._closing:
            self._on_gone()

    async def spawn(self, channel_end: socket.socket, listening: list[socket.socket], argv: list[str]) -> int:
        """Fork a worker holding ``channel_end`` and the ``listening`` sockets (the zygote keeps no copy); its pid."""
        fds = [channel_end.fileno(), *(sock.fileno() for sock in listening)]
        reply = await self._request(encode("spawn", argv=argv), fds)
        pid = int_field(reply, "pid")
        if reply.get("type") != "spawned" or pid is None:
            raise OSError(f"the zygote could not fork a worker: {reply.get('reason', reply)}")
        return pid

    async def regenerate(self) -> None:
        """New session-ticket keys for the workers spawned from now on."""
        await self._request(encode("regenerate"), [])

    async def _request(self, frame: bytes, fds: list[int]) -> Message:
        async with self._lock:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, self._exchange, frame, fds)

    def _exchange(self, frame: bytes, fds: list[int]) -> Message:
        sock = self._control
        sock.settimeout(10.0)
        if fds:
            sent = socket.send_fds(sock, [frame[:_HEADER]], fds)
            if sent != _HEADER:
                raise OSError("short write to the zygote")
            sock.sendall(frame[_HEADER:])
        else:
            sock.sendall(frame)
        return _recv_message(sock)

    def close(self) -> None:
        """Let the zygote go (it exits on the control socket's EOF); workers are stopped separately."""
        self._closing = True
        try:
            self._control.close()
        except OSError:
            pass

    async def wait_closed(self, timeout: float = 5.0) -> None:
        self.close()
        try:
            async with asyncio.timeout(timeout):
                await self._reader
        except TimeoutError:
            self.proc.kill()
            self._reader.cancel()


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise OSError("the control socket was closed")
        data += chunk
    return data


def _wait(proc: subprocess.Popen[bytes]) -> int | None:
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


if __name__ == "__main__":
    sys.exit(main())
