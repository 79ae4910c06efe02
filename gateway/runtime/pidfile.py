"""``<prefix>/pids/gateway.pid``: one running gateway per prefix, as Kong's ``kong start`` enforces.

Kong checks the pid file before it touches anything (``kong/cmd/start.lua``: ``assert(not
kill.is_running(conf.nginx_pid), "Kong is already running in " .. conf.prefix)``). The gateway does the same, and
more strictly, because it runs in the foreground and a second one on the same prefix would share its SQLite file and
logs:

- ``claim`` runs first in ``gateway start``: a pid file naming a live gateway refuses the start with Kong's message
  (``AlreadyRunning``) and changes nothing: not the file, not the logs, not the store. A pid file naming a process
  that is gone (a crash, a killed container) is stale: it is taken over, and the caller says so. The check and the
  write happen under an advisory lock (``pids/gateway.lock``), so two starts racing on one prefix cannot both win.
- ``release`` removes the file at exit only if it still names this process: a start that failed, or one that was
  refused, never deletes the running gateway's pid file (which would leave ``gateway stop`` saying "not running"
  while it runs).

"Live" is ``kill(pid, 0)`` succeeding (as Kong's ``kill -0``), except that a pid the kernel has since given to a
program that is not a gateway (``/proc/<pid>/cmdline`` runs neither the ``gateway`` script nor ``-m gateway``, and
is no gateway master's title), or to this very process (a container restarted with the same pid), is stale: a
recycled pid must not lock a prefix forever. ``gateway stop`` / ``reload`` use the same test, so they never signal
such a process either.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["AlreadyRunning", "Stale", "claim", "pid_path", "read_pid", "release"]


class AlreadyRunning(RuntimeError):
    """A live gateway holds this prefix; the message is Kong's."""

    def __init__(self, prefix: str, pid: int) -> None:
        super().__init__(f"Kong is already running in {os.path.abspath(prefix)}")
        self.pid = pid


@dataclass(frozen=True, slots=True)
class Stale:
    """A pid file left by a gateway that is gone, replaced by ``claim``."""

    path: str
    pid: int | None  # None: the file held no pid at all

    def notice(self) -> str:
        held = f"process {self.pid} is not a running gateway" if self.pid is not None else "it held no pid"
        return f"took over the stale pid file {self.path} ({held})"


def pid_path(prefix: str) -> str:
    return os.path.join(prefix, "pids", "gateway.pid")


def read_pid(prefix: str) -> int | None:
    """The pid the file names, or None when there is no file or it holds no number."""
    try:
        with open(pid_path(prefix), encoding="ascii") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def is_gateway(pid: int) -> bool:
    """Whether ``pid`` is a live process that can be a gateway (not this one; its command line names ``gateway``)."""
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's: only its command line can tell more
        pass
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return _names_a_gateway(handle.read())
    except OSError:  # no /proc (or not readable): trust kill(), as Kong does
        return True


def _names_a_gateway(cmdline: bytes) -> bool:
    """A master's title (``gateway: master process ...``), the console script (``.../bin/gateway start``, also
    under ``make run``), or ``python -m gateway``: the ways a gateway runs. A mere path with "gateway" in it is not."""
    args = [arg for arg in cmdline.split(b"\0") if arg]
    if args and args[0].startswith(b"gateway:"):
        return True
    for position, arg in enumerate(args):
        if os.path.basename(arg) == b"gateway" or (arg == b"-m" and args[position + 1 : position + 2] == [b"gateway"]):
            return True
    return False


@contextlib.contextmanager
def _locked(prefix: str) -> Iterator[None]:
    with open(os.path.join(prefix, "pids", "gateway.lock"), "a", encoding="ascii") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def claim(prefix: str) -> Stale | None:
    """Write this process's pid; ``AlreadyRunning`` if a live gateway holds the prefix. Returns the stale file that
    was taken over, if any, for the caller to report. ``<prefix>/pids`` must exist."""
    path = pid_path(prefix)
    with _locked(prefix):
        stale = Stale(path, read_pid(prefix)) if os.path.exists(path) else None
        if stale is not None and stale.pid is not None and is_gateway(stale.pid):
            raise AlreadyRunning(prefix, stale.pid)
        temporary = f"{path}.{os.getpid()}"
        with open(temporary, "w", encoding="ascii") as handle:
            handle.write(f"{os.getpid()}\n")
        os.replace(temporary, path)  # readers see the old content or the new one, never a partial file
    return stale


def release(prefix: str) -> None:
    """Remove the pid file if it names this process (else it is another gateway's, or already gone)."""
    if read_pid(prefix) != os.getpid():
        return
    with contextlib.suppress(OSError):
        os.unlink(pid_path(prefix))
