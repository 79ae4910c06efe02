"""A listener whose address is taken: one wording whatever the listener, naming the setting and its ``KONG_*``
variable (``gateway.runtime.listen_errors``), and nothing left behind."""

from __future__ import annotations

import pathlib
import socket
import subprocess

import pytest

from tests.fixtures.gateway_process import GATEWAY, make_gateway


def _taken() -> socket.socket:
    """A socket listening on a loopback port, as another server would."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@pytest.mark.parametrize("workers", ["1", "2"])  # the single process binds itself; the master binds for workers
@pytest.mark.parametrize("setting", ["proxy_listen", "admin_listen"])
def test_a_taken_port_names_the_setting_and_its_variable(tmp_path: pathlib.Path, setting: str, workers: str) -> None:
    with _taken() as holder:
        port = holder.getsockname()[1]
        gw = make_gateway(tmp_path, {"KONG_WORKER_PROCESSES": workers})
        variable = f"KONG_{setting.upper()}"
        value = f"127.0.0.1:{port}" if setting == "admin_listen" else f"127.0.0.1:{gw.proxy_port}, 127.0.0.1:{port}"
        gw.env[variable] = value
        out = subprocess.run(
            [GATEWAY, "start", "-p", str(gw.prefix)], env=gw.env, capture_output=True, text=True, timeout=60
        )
    assert out.returncode == 1
    assert out.stderr == (
        f"Error: could not listen on 127.0.0.1:{port} ({setting}): address already in use, something else listens "
        f"there; change {setting} in the configuration file or {variable} in the environment (now: {value})\n"
    )
    assert "Gateway started" not in out.stdout
    assert not (gw.prefix / "pids" / "gateway.pid").exists()  # a start that failed leaves no pid file
