"""``gateway --help`` teaches: every command with an example, the KONG_* rule, the default prefix and ports;
``gateway help`` and ``gateway help COMMAND`` work, and ``python -m gateway`` is the same command."""

from __future__ import annotations

import subprocess
import sys

from gateway.cli import COMMANDS
from gateway.settings import SPECS
from tests.fixtures.gateway_process import run_cli


def test_help_lists_every_command_with_an_example_and_the_rules() -> None:
    out = run_cli("--help")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for name, summary, example in COMMANDS:
        assert f"  {name}" in text and summary in text and f"e.g. {example}" in text
        assert example.startswith(f"gateway {name}")
    assert "KONG_<KEY IN CAPITALS>" in text
    assert "KONG_PROXY_LISTEN='127.0.0.1:18000, 127.0.0.1:18443 ssl'" in text
    for key in ("prefix", "proxy_listen", "admin_listen", "database"):
        assert f"{key}  " in text and SPECS[key].default in text
    assert "python -m gateway" in text


def test_gateway_help_and_python_dash_m_say_the_same() -> None:
    assert run_cli("help").stdout == run_cli("--help").stdout
    dash_m = subprocess.run([sys.executable, "-m", "gateway", "--help"], capture_output=True, text=True, timeout=30)
    assert dash_m.stdout == run_cli("--help").stdout


def test_help_for_one_command() -> None:
    for name, _, example in COMMANDS:
        out = run_cli("help", name)
        assert out.returncode == 0, out.stderr
        assert out.stdout == run_cli(name, "--help").stdout
        assert out.stdout.startswith(f"usage: gateway {name}")
        assert f"example:\n  {example}\n" in out.stdout
    unknown = run_cli("help", "launch")
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("Error: no command 'launch'; the commands are start, stop,")


def test_a_bare_gateway_prints_the_whole_help() -> None:
    out = run_cli()
    assert out.returncode == 2
    assert out.stderr == run_cli("--help").stdout
