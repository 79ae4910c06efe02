"""nginx configurations: the shared upstream, and nginx as the proxy each scenario compares the gateway with.

Equivalence rules (what makes the comparison fair, per scenario):

- one worker (``worker_processes 1``), ``access_log off`` (the gateway runs with ``proxy_access_log = off``); the
  all-cores rows run ``worker_processes auto`` with ``listen ... reuseport`` (Kong's default listen flags), as the
  gateway runs ``worker_processes = auto`` on ``SO_REUSEPORT`` listeners;
- the same downstream certificate chain and key, ``ssl_protocols TLSv1.2 TLSv1.3`` (the gateway's default);
- upstream TLS as the gateway does it under ``tls_verify``: ``proxy_ssl_verify on`` against the same root,
  ``proxy_ssl_verify_depth 1`` (Kong's default depth for verified services is nginx's default, 1), the same client
  chain, ``proxy_ssl_session_reuse on`` (both defaults); the upstream is named ``localhost`` (SNI and host check,
  as Kong derives both from the service host) and reached at 127.0.0.1;
- upstream keepalive: ``keepalive 512`` (the gateway's ``upstream_keepalive_pool_size`` default) with HTTP/1.1 and
  ``Connection: ""``; S6 drops the ``keepalive`` line as the gateway sets the pool size to 0;
- client certificates (S4): ``ssl_verify_client on`` + ``ssl_client_certificate`` the root, depth 3; the gateway
  uses mtls-auth with the same root as its CA (``skip_consumer_lookup``, revocation ``SKIP``);
- full handshakes (S5): ``ssl_session_cache off; ssl_session_tickets off`` (the gateway: tickets off and no
  session cache).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["BIG_BODY_SIZE", "SMALL_BODY", "proxy_conf", "upstream_conf"]

SMALL_BODY = "hello from the upstream\n"
BIG_BODY_SIZE = 1024 * 1024

_MAIN = """worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
worker_rlimit_nofile 16384;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    default_type application/octet-stream;
{body}
}}
"""


def upstream_conf(prefix: Path, http_port: int, https_port: int, mtls_port: int, pki_dir: Path) -> str:
    """The fast upstream: ``return 200`` with a small body (``/``) and a 1 MiB file (``/big``), over HTTP, HTTPS,
    and HTTPS with ``ssl_verify_client on``. Certificates are the ECDSA chain's."""
    locations = f"""
        location / {{ return 200 "{SMALL_BODY.strip()}\\n"; }}
        location = /big {{ root {pki_dir}; try_files /big.bin =404; }}"""
    tls = f"""
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate {pki_dir}/ecdsa-server_chain.pem;
        ssl_certificate_key {pki_dir}/ecdsa-server_key.pem;"""
    body = f"""
    server {{
        listen 127.0.0.1:{http_port} reuseport;{locations}
    }}
    server {{
        listen 127.0.0.1:{https_port} ssl;{tls}{locations}
    }}
    server {{
        listen 127.0.0.1:{mtls_port} ssl;{tls}
        ssl_client_certificate {pki_dir}/ecdsa-root.pem;
        ssl_verify_client on;
        ssl_verify_depth 3;{locations}
    }}"""
    return _MAIN.format(prefix=prefix, body=body, workers=1)


def proxy_conf(
    prefix: Path,
    port: int,
    *,
    downstream_tls: str | None,
    pki_dir: Path,
    upstream_port: int,
    upstream_tls: bool,
    keepalive: bool = True,
    verify_client: bool = False,
    full_handshakes: bool = False,
    all_cores: bool = False,
) -> str:
    """nginx as the proxy of one scenario (see the module rules).

    Args:
        downstream_tls: ``None`` for a plain HTTP listener, else the key type of the served chain (``rsa``/``ecdsa``).
        upstream_tls: proxy to the mTLS upstream over verified TLS with the client certificate.
        keepalive: keep an upstream keepalive pool.
        verify_client: require a client certificate chaining to the root (S4).
        full_handshakes: no session cache, no tickets (S5).
        all_cores: ``worker_processes auto`` and a ``reuseport`` listener instead of one worker.
    """
    listen = f"listen 127.0.0.1:{port}" + (" reuseport" if all_cores else "")
    server_tls = ""
    if downstream_tls is not None:
        listen += " ssl"
        server_tls = f"""
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate {pki_dir}/{downstream_tls}-server_chain.pem;
        ssl_certificate_key {pki_dir}/{downstream_tls}-server_key.pem;"""
        if full_handshakes:
            server_tls += "\n        ssl_session_cache off;\n        ssl_session_tickets off;"
        if verify_client:
            server_tls += f"""
        ssl_client_certificate {pki_dir}/{downstream_tls}-root.pem;
        ssl_verify_client on;
        ssl_verify_depth 3;"""
    scheme = "https" if upstream_tls else "http"
    upstream_ssl = ""
    if upstream_tls:
        upstream_ssl = f"""
            proxy_ssl_verify on;
            proxy_ssl_verify_depth 1;
            proxy_ssl_server_name on;
            proxy_ssl_name localhost;
            proxy_ssl_trusted_certificate {pki_dir}/ecdsa-root.pem;
            proxy_ssl_certificate {pki_dir}/ecdsa-client_chain.pem;
            proxy_ssl_certificate_key {pki_dir}/ecdsa-client_key.pem;
            proxy_ssl_session_reuse on;"""
    pool = "\n        keepalive 512;" if keepalive else ""
    body = f"""
    upstream backend {{
        server 127.0.0.1:{upstream_port};{pool}
    }}
    server {{
        {listen};{server_tls}
        location / {{
            proxy_pass {scheme}://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";{upstream_ssl}
        }}
    }}"""
    return _MAIN.format(prefix=prefix, body=body, workers="auto" if all_cores else 1)
