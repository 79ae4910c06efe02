"""``gateway.runtime.pidfile``: claim, refuse, take over, release; on real files and real processes."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import threading

import pytest

from gateway.runtime import pidfile


@pytest.fixture
def prefix(tmp_path: pathlib.Path) -> str:
    (tmp_path / "pids").mkdir()
    return str(tmp_path)


def _pid_file(prefix: str) -> pathlib.Path:
    return pathlib.Path(prefix, "pids", "gateway.pid")


def test_claim_writes_this_pid_and_release_removes_it(prefix: str) -> None:
    assert pidfile.claim(prefix) is None
    assert _pid_file(prefix).read_text() == f"{os.getpid()}\n"
    assert pidfile.read_pid(prefix) == os.getpid()
    pidfile.release(prefix)
    assert not _pid_file(prefix).exists()
    pidfile.release(prefix)  # nothing left: no error


def test_a_live_gateway_refuses_the_claim_with_kongs_message(prefix: str) -> None:
    # a live process whose command line names a gateway (as the console script's does)
    alive = subprocess.Popen(
        [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)", "gateway"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert alive.stdout is not None and alive.stdout.readline() == "up\n"  # past exec: its own command line
        _pid_file(prefix).write_text(f"{alive.pid}\n")
        with pytest.raises(pidfile.AlreadyRunning) as refused:
            pidfile.claim(prefix)
        assert str(refused.value) == f"Kong is already running in {prefix}"
        assert refused.value.pid == alive.pid
        assert _pid_file(prefix).read_text() == f"{alive.pid}\n"
        pidfile.release(prefix)  # not ours: left alone
        assert _pid_file(prefix).read_text() == f"{alive.pid}\n"
    finally:
        alive.kill()
        alive.wait()


def test_stale_files_are_taken_over(prefix: str) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    for content, pid in ((gone.stdout, int(gone.stdout)), ("", None), ("x\n", None), (f"{os.getpid()}\n", os.getpid())):
        _pid_file(prefix).write_text(content)
        stale = pidfile.claim(prefix)
        assert stale == pidfile.Stale(str(_pid_file(prefix)), pid)
        assert _pid_file(prefix).read_text() == f"{os.getpid()}\n"
    assert pidfile.Stale("/p/pids/gateway.pid", 12).notice() == (
        "took over the stale pid file /p/pids/gateway.pid (process 12 is not a running gateway)"
    )
    assert pidfile.Stale("/p/pids/gateway.pid", None).notice().endswith("(it held no pid)")


def test_the_prefix_in_the_message_is_absolute_and_without_a_trailing_slash() -> None:
    assert str(pidfile.AlreadyRunning("servroot/", 1)) == f"Kong is already running in {os.path.abspath('servroot')}"


def test_claims_are_serialized_by_the_lock(prefix: str) -> None:
    """While one claim holds the lock, another waits for it (so check-then-write is never interleaved)."""
    import fcntl

    with open(os.path.join(prefix, "pids", "gateway.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = threading.Event()

        def claim() -> None:
            pidfile.claim(prefix)
            done.set()

        worker = threading.Thread(target=claim)
        worker.start()
        assert not done.wait(0.3)  # blocked on the lock, nothing written
        assert not _pid_file(prefix).exists()
    worker.join(5)
    assert done.is_set() and _pid_file(prefix).read_text() == f"{os.getpid()}\n"


def test_what_counts_as_a_gateway_command_line() -> None:
    names = pidfile._names_a_gateway
    assert names(b"gateway: master process .venv/bin/gateway start -p servroot\0\0\0")
    assert names(b"/srv/kong-tls-gateway/.venv/bin/python3\0/srv/kong-tls-gateway/.venv/bin/gateway\0start\0")
    assert names(b"python3\0-m\0gateway\0start\0")
    assert not names(b"/srv/kong-tls-gateway/.venv/bin/python3\0-m\0pytest\0")  # a path alone is not one
    assert not names(b"sleep\0060\0")
    assert not names(b"python3\0-m\0")
