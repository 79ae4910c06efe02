"""The floor (``benchmarks/floor.py``) does the scenario's work and no less: through it, S1-S3's requests get the
upstream's answer, and an upstream it cannot verify (another CA, another name) gets no request at all.

Real peers: the benchmarks' nginx upstream (``ssl_verify_client on`` for S3) and curl as the client.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.processes import Processes, free_port
from benchmarks.run import prepare_environment
from benchmarks.scenarios import SCENARIOS, Environment, start_floor, url_of

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def env() -> Iterator[Environment]:
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp, prepare_environment(Path(tmp)) as (env, _):
        yield env


def _curl(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-sk", "--max-time", "5", "-i", url, "-o", "-"], capture_output=True, text=True, timeout=10
    )


@pytest.mark.parametrize("key", ["S1", "S2", "S3"])
def test_the_floor_answers_with_the_upstreams_response(env: Environment, key: str) -> None:
    scenario = next(s for s in SCENARIOS if s.key == key)
    with Processes() as procs:
        server = start_floor(procs, scenario, env)
        first, second = _curl(url_of(scenario, server)), _curl(url_of(scenario, server))
    for result in (first, second):
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("HTTP/1.1 200 OK")
        assert result.stdout.endswith("hello from the upstream\n")


@pytest.mark.parametrize(
    ("ca_of", "name"),
    [("rsa", "localhost"), ("ecdsa", "not-the-upstream.test")],
    ids=["untrusted-ca", "wrong-name"],
)
def test_the_floor_refuses_an_upstream_it_cannot_verify(env: Environment, ca_of: str, name: str) -> None:
    pki = env.pki["ecdsa"]
    args = [str(env.upstream_mtls), "--cert", str(pki.server_chain), "--key", str(pki.server_key)]
    args += ["--upstream-tls", "--ca", str(env.pki[ca_of].root), "--client-cert", str(pki.client_chain)]
    args += ["--client-key", str(pki.client_key), "--upstream-name", name]
    port = free_port()
    with Processes() as procs:
        procs.floor(args, port, env.workdir / f"floor-refuses-{ca_of}.log")
        result = _curl(f"https://127.0.0.1:{port}/")
    assert result.returncode == 52, result  # curl: empty reply from server (the floor closed the connection)
    assert "hello from the upstream" not in result.stdout
