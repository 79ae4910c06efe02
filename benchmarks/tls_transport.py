"""Micro benchmark: a minimal HTTPS responder through ``TlsTransport`` (pyOpenSSL) vs the stdlib ``ssl`` server.

Both servers run on uvloop in a child process, answer every request with the same fixed 200 response using a
naive ``\\r\\n\\r\\n`` split parser, and are loaded with ``wrk -t1 -c50 -d5s`` on loopback (keepalive, so the
numbers measure the data path, not handshakes). The median of ``--runs`` runs is printed for each.

    python benchmarks/tls_transport.py [--runs 3] [--duration 5] [--connections 50] [--only pyopenssl|stdlib]

What it cannot tell: the cost of full handshakes (use ``openssl s_time -new``), or of a real HTTP parser.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, world!"


class Responder(asyncio.Protocol):
    """Fixed 200 for every request; requests are split on the blank line only (no bodies)."""

    __slots__ = ("buf", "transport")

    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        n = buf.count(b"\r\n\r\n")
        if n:
            self.buf = buf[buf.rfind(b"\r\n\r\n") + 4 :]
            assert self.transport is not None
            self.transport.write(RESPONSE * n)
        else:
            self.buf = buf


def make_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed RSA 2048 pair (what Kong generates by default)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def serve(mode: str, cert: str, key: str) -> None:
    """Child process: run one server on an ephemeral port, print ``READY <port>``, serve until killed."""
    import uvloop

    async def main() -> None:
        loop = asyncio.get_running_loop()
        if mode == "pyopenssl":
            from OpenSSL import SSL

            from gateway.tls.engine.transport import create_tls_server_protocol

            ctx = SSL.Context(SSL.TLS_METHOD)
            ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
            ctx.use_certificate_chain_file(cert)
            ctx.use_privatekey_file(key)
            server = await loop.create_server(create_tls_server_protocol(ctx, Responder), "127.0.0.1", 0)
        else:
            sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            sctx.minimum_version = ssl.TLSVersion.TLSv1_2
            sctx.load_cert_chain(cert, key)
            server = await loop.create_server(Responder, "127.0.0.1", 0, ssl=sctx)
        port = server.sockets[0].getsockname()[1]
        print(f"READY {port}", flush=True)
        await asyncio.Event().wait()

    uvloop.run(main())


def run_wrk(port: int, duration: int, connections: int) -> float:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", f"https://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        timeout=duration + 30,
        check=True,
    ).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    return float(m.group(1))


class ServerProcess:
    """One responder in a child process (its own core), started once and loaded several times."""

    def __init__(self, mode: str, cert: Path, key: Path) -> None:
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        self.mode = mode
        self.errors = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", mode, str(cert), str(key)],
            stdout=subprocess.PIPE,
            stderr=self.errors,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # blocks until the server is listening
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"{mode} server did not start: {line!r}")
        self.port = int(line.split()[1])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.errors.seek(0)
        tail = self.errors.read()[-2000:]
        if tail.strip():
            print(f"{self.mode} server stderr (tail):\n{tail}", file=sys.stderr)
        self.errors.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--only", choices=("pyopenssl", "stdlib"))
    parser.add_argument("--serve", nargs=3, metavar=("MODE", "CERT", "KEY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(*args.serve)
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is required")
    modes = [args.only] if args.only else ["pyopenssl", "stdlib"]
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = make_cert(Path(tmp))
        servers = [ServerProcess(mode, cert, key) for mode in modes]
        results: dict[str, list[float]] = {mode: [] for mode in modes}
        try:
            # Interleaved runs, so that drift in machine load affects both servers alike.
            for _ in range(args.runs):
                for server in servers:
                    results[server.mode].append(run_wrk(server.port, args.duration, args.connections))
        finally:
            for server in servers:
                server.stop()
        for mode in modes:
            runs = ", ".join(f"{r:,.0f}" for r in results[mode])
            print(f"{mode:10s} median {statistics.median(results[mode]):>9,.0f} req/s   runs: {runs}", flush=True)


if __name__ == "__main__":
    main()
