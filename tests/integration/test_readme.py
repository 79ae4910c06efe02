"""The README's walkthrough, run from README.md itself: the blocks a newcomer pastes, against a real gateway.

The section from "## The first ten minutes" to "## What it is" is read from the file (so the README cannot drift
from what is tested). Its ``sh`` blocks each start with ``# terminal 1`` (a gateway started in the foreground) or
``# terminal 2`` (commands pasted into one shell, where ``cd``, ``PATH`` and background jobs carry over). They run
in the README's order, as written, with one change: the loopback ports. Each default port (8000, 8443, 8001, 9000,
9443, and the README's 18xxx example) is replaced by a free one wherever it appears as a port (after ``:`` or a
space), and the terminal-1 blocks get ``KONG_PROXY_LISTEN`` / ``KONG_ADMIN_LISTEN`` on those ports (the rule the
README teaches); nothing else is added.

What is checked: every block exits 0 (``set -e``: the first failing command ends the shell); in terminal 2, the
``# ...`` lines under the commands are what they print: the ``HTTP/1.1 NNN`` status lines, in order and nothing
more, and every fragment between ``...`` appears in the block's output; the gateways stop when the README stops
them (``gateway stop``), exit 0, and their error log has no ``alert``/``crit``/``emerg`` line.

The clone is a temporary directory holding a link to the repository's Makefile and to the virtualenv the tests
run in, a copy of conf/ (``kong.yml``'s upstream port localized too), and a copy of pyproject.toml dated in the
past: ``make run`` finds the install up to date and starts the gateway, exactly as in a clone where ``make install``
already ran. The shell's ``PATH`` does not have the virtualenv's bin directory, so that ``gateway`` is found only
through the README's own ``export PATH=...``.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import sys
from dataclasses import dataclass

from tests.fixtures.ports import free_port
from tests.fixtures.terminal import Foreground, Shell

REPO = pathlib.Path(__file__).resolve().parents[2]
SECTION = ("## The first ten minutes", "## What it is")
START_TIMEOUT = 90.0  # `make run` on a loaded 2-core machine, workers included
STOP_TIMEOUT = 30.0

DEFAULTS = "8000|8443|8001|9000|9443|18000|18443|18001"
PORT = re.compile(rf"(?<=[:\s])({DEFAULTS})(?=[\s/:,'\"]|$)", re.M)
LEFT_OVER = re.compile(rf"\b({DEFAULTS})\b")  # after the substitution: none of them, anywhere
STATUS = re.compile(r"HTTP/1\.1 \d{3}")


@dataclass(frozen=True)
class Block:
    terminal: int
    text: str

    @property
    def body(self) -> str:
        """The block without its ``# terminal N`` line."""
        return self.text.split("\n", 1)[1] if "\n" in self.text else ""


def walkthrough() -> list[Block]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    begin, end = text.index(SECTION[0]), text.index(SECTION[1])
    blocks = []
    for match in re.finditer(r"^```sh\n(.*?)^```$", text[begin:end], re.M | re.S):
        code = match.group(1)
        header = re.match(r"# terminal ([12])\b", code)
        assert header, f"a walkthrough block must start with '# terminal 1' or '# terminal 2':\n{code}"
        blocks.append(Block(int(header.group(1)), code))
    return blocks


def expected_output(block: Block) -> tuple[list[str], list[str]]:
    """The status lines and the other fragments that the block's ``# ...`` lines say its commands print."""
    statuses: list[str] = []
    fragments: list[str] = []
    for line in block.body.splitlines():
        if not line.startswith("# "):
            continue
        statuses += STATUS.findall(line)
        fragments += [piece.strip(" ,") for piece in line[2:].split("...") if piece.strip(" ,")]
    return statuses, fragments


def localize(text: str, ports: dict[str, int]) -> str:
    """``text`` with every default port replaced by its free one."""
    done = PORT.sub(lambda m: str(ports[m.group(1)]), text)
    assert not LEFT_OVER.search(done), done
    return done


def make_clone(tmp_path: pathlib.Path, ports: dict[str, int]) -> pathlib.Path:
    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / "Makefile").symlink_to(REPO / "Makefile")
    shutil.copytree(REPO / "conf", clone / "conf")  # kong.yml names the upstream's port: localized like the README
    kong_yml = clone / "conf" / "kong.yml"
    kong_yml.write_text(localize(kong_yml.read_text(), ports))
    (clone / ".venv").symlink_to(sys.prefix)
    shutil.copy(REPO / "pyproject.toml", clone / "pyproject.toml")
    os.utime(clone / "pyproject.toml", (0, 0))  # older than .venv/bin/gateway: make sees the install as done
    return clone


def base_env() -> dict[str, str]:
    """The test runner's environment without KONG_* settings and without the virtualenv on PATH."""
    venv_bin = os.path.dirname(sys.executable)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KONG_") and k not in ("VIRTUAL_ENV", "PREFIX")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p and p != venv_bin)
    return env


def test_the_readme_walkthrough_runs_as_written(tmp_path: pathlib.Path) -> None:
    blocks = walkthrough()
    first, *rest = blocks
    # the plain `make run` is the ports-moved command without its assignments: running the latter runs both
    assert first.terminal == 1 and first.body.strip() == "make run", first.text
    moved = rest[0]
    assert moved.terminal == 1 and moved.body.strip().endswith(" make run"), moved.text
    assert "KONG_PROXY_LISTEN=" in moved.body and "KONG_ADMIN_LISTEN=" in moved.body
    assert any(b.terminal == 2 for b in rest) and sum(b.terminal == 1 for b in rest) >= 2

    proxy, proxy_ssl, admin, upstream, upstream_tls = (free_port() for _ in range(5))
    ports = {"8000": proxy, "18000": proxy, "8443": proxy_ssl, "18443": proxy_ssl, "8001": admin, "18001": admin}
    ports |= {"9000": upstream, "9443": upstream_tls}
    clone = make_clone(tmp_path, ports)
    env = base_env()
    gateway_env = env | {
        "KONG_PROXY_LISTEN": f"127.0.0.1:{proxy}, 127.0.0.1:{proxy_ssl} ssl",
        "KONG_ADMIN_LISTEN": f"127.0.0.1:{admin}",
    }
    shell = Shell(clone, env)
    gateways: list[Foreground] = []
    try:
        for block in rest:
            text = localize(block.text, ports)
            if block.terminal == 1:
                if gateways:  # the README stopped the previous one before starting this one
                    assert gateways[-1].wait(STOP_TIMEOUT) == 0, gateways[-1].output
                gateways.append(Foreground(text, clone, gateway_env, "Gateway started", START_TIMEOUT))
                assert "Warning:" not in gateways[-1].output, gateways[-1].output
                continue
            output = shell.run(text)
            statuses, fragments = expected_output(block)
            assert STATUS.findall(output) == statuses, f"{block.text}\nprinted:\n{output}"
            for fragment in fragments:
                assert fragment in output, f"{fragment!r} not printed by\n{block.text}\nprinted:\n{output}"
        assert gateways[-1].wait(STOP_TIMEOUT) == 0, gateways[-1].output
    finally:
        shell.close()
        for gateway in gateways:
            gateway.close()

    error_log = (clone / "servroot" / "logs" / "error.log").read_text()
    assert error_log.count("gracefully shutting down") == len(gateways)
    assert not re.search(r"\[(alert|crit|emerg)\]", error_log), error_log
