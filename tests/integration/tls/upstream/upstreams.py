"""Mock TLS upstreams in one real nginx (Kong's ``upstream_mtls`` / ``upstream_tls`` mocks, plus failure cases).

Every server answers ``it works`` and reports, in response headers, what it saw of the TLS connection:
``X-SNI`` (``$ssl_server_name``), ``X-Reused`` (``$ssl_session_reused``: ``r`` when the session was resumed),
``X-Conn`` (``$connection``: the same number means the same TCP connection), ``X-Client-DN`` and
``X-Client-FP`` (``$ssl_client_s_dn`` / ``$ssl_client_fingerprint``). Kong's mocks turn tickets and keepalive
off; these keep both on, so pooling and resumption are observable.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.fixtures.nginx import NginxRunner, NginxServer
from tests.integration.tls.upstream.pki import Pki

HEADERS = """
        add_header X-SNI $ssl_server_name always;
        add_header X-Reused $ssl_session_reused always;
        add_header X-Conn $connection always;
        add_header X-Proto $ssl_protocol always;
        add_header X-Client-DN $ssl_client_s_dn always;
        add_header X-Client-FP $ssl_client_fingerprint always;
"""

SERVER = """
    server {{
        listen 127.0.0.1:{{{port}}} ssl;
        ssl_certificate {{prefix}}/{cert};
        ssl_certificate_key {{prefix}}/{key};
        {extra}
        location / {{
{headers}
            return 200 "it works";
        }}
    }}
"""

# name -> (certificate file, extra directives)
SERVERS = {
    "mtls": (
        "example.pem",
        "ssl_client_certificate {prefix}/root.pem; ssl_verify_client on; ssl_verify_depth 3;",
    ),
    "optional": (
        "localhost.pem",
        "ssl_client_certificate {prefix}/root.pem; ssl_verify_client optional; ssl_verify_depth 3;",
    ),
    "tls": ("localhost.pem", ""),
    "tls12": ("localhost.pem", "ssl_protocols TLSv1.2;"),
    "leaf_only": ("localhost-leaf.pem", ""),
    "deep": ("deep.pem", ""),
    "deep_leaf_only": ("deep-leaf.pem", ""),
    "self_signed": ("self-signed.pem", ""),
    "expired": ("expired.pem", ""),
}


@dataclass
class Upstreams:
    """The running nginx and the port of each mock server (``ports["tls"]``...)."""

    server: NginxServer
    ports: dict[str, int]

    def access_lines(self) -> list[str]:
        return self.server.access_log_lines()


def start_upstreams(runner: NginxRunner, pki: Pki) -> Upstreams:
    files = {
        "root.pem": pki.root.cert_pem.encode(),
        "example.pem": pki.server_example.chain_pem.encode(),
        "example.key": pki.server_example.key_pem.encode(),
        "localhost.pem": pki.server_localhost.chain_pem.encode(),
        "localhost.key": pki.server_localhost.key_pem.encode(),
        "localhost-leaf.pem": pki.server_localhost.cert_pem.encode(),
        "deep.pem": pki.deep_localhost.chain_pem.encode(),
        "deep.key": pki.deep_localhost.key_pem.encode(),
        "deep-leaf.pem": pki.deep_localhost.cert_pem.encode(),
        "self-signed.pem": pki.self_signed.cert_pem.encode(),
        "self-signed.key": pki.self_signed.key_pem.encode(),
        "expired.pem": pki.expired.chain_pem.encode(),
        "expired.key": pki.expired.key_pem.encode(),
    }
    keys = {
        "example.pem": "example.key",
        "localhost.pem": "localhost.key",
        "localhost-leaf.pem": "localhost.key",
        "deep.pem": "deep.key",
        "deep-leaf.pem": "deep.key",
        "self-signed.pem": "self-signed.key",
        "expired.pem": "expired.key",
    }
    blocks = []
    names = list(SERVERS)
    for i, name in enumerate(names):
        cert, extra = SERVERS[name]
        port = "port" if i == 0 else f"port{i + 1}"
        blocks.append(SERVER.format(port=port, cert=cert, key=keys[cert], extra=extra, headers=HEADERS))
    # nginx 1.22 still defaults to TLSv1-1.2; offer 1.3 like current nginx (``tls12`` stays on 1.2 to cover both)
    body = "    ssl_protocols TLSv1.2 TLSv1.3;\n" + "".join(blocks)
    server = runner.start(body, files=files, ports=len(names))
    return Upstreams(server, dict(zip(names, server.ports, strict=True)))
