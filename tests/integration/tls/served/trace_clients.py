"""Clients that ask for the TLS trace: curl and ``openssl s_client`` sending ``Kong-Debug: 1``, and the parsing of
the ``key=value; key=value`` records (``docs/tls-trace.md``). Every call is bounded by a subprocess timeout."""

from __future__ import annotations

import subprocess

TIMEOUT = 15.0


def parse_record(value: str) -> dict[str, str]:
    """``key=value; key=value`` -> dict (the values these tests read hold no ``;``)."""
    out: dict[str, str] = {}
    for part in value.split("; "):
        key, _, text = part.partition("=")
        out[key] = text
    return out


def parse_head(text: str) -> tuple[int, dict[str, str]]:
    """The last response head in ``text`` (curl ``-D -`` or a raw HTTP/1.1 response): status, lowercase headers."""
    blocks = [b for b in text.replace("\r\n", "\n").split("\n\n") if b.startswith("HTTP/")]
    assert blocks, text
    lines = blocks[-1].split("\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers


def curl_head(
    port: int, sni: str | None, *extra: str, debug: bool = True, path: str = "/"
) -> tuple[int, dict[str, str]]:
    """A GET over TLS (``sni=None``: to 127.0.0.1, so curl sends no SNI), head only."""
    host = sni or "127.0.0.1"
    args = ["curl", "-sS", "-k", "--http1.1", "--max-time", str(int(TIMEOUT)), "-o", "/dev/null", "-D", "-"]
    if sni is not None:
        args += ["--resolve", f"{sni}:{port}:127.0.0.1"]
    if debug:
        args += ["-H", "Kong-Debug: 1"]
    args += [*extra, f"https://{host}:{port}{path}"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT + 5)
    assert done.returncode == 0, done.stderr
    return parse_head(done.stdout)


def s_client_request(port: int, sni: str | None, *extra: str, host: str = "trace.test") -> tuple[int, dict[str, str]]:
    """One ``Kong-Debug: 1`` request through ``openssl s_client`` (its options in ``extra``), head parsed."""
    args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-ign_eof", "-quiet"]
    args += ["-servername", sni] if sni is not None else ["-noservername"]
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\nKong-Debug: 1\r\nConnection: close\r\n\r\n"
    done = subprocess.run([*args, *extra], input=request, capture_output=True, text=True, timeout=TIMEOUT)
    return parse_head(done.stdout)
