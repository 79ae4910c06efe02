"""Kong's stream subsystem: ``stream_listen``, and routes with ``protocols`` ``tcp``, ``tls``, ``tls_passthrough``.

Read in this order:

- ``router``: which stream route a connection takes (Kong's ``traditional_compatible`` stream expression and
  priorities), compiled once per snapshot (``Snapshot.stream_router``).
- ``clienthello``: the server name of a ClientHello read without terminating TLS (nginx's ``ssl_preread``).
- ``session``: one connection from accept to close: preread, route, terminate or pass through, connect, relay.
- ``upstream``: peers (balancer, DNS), tries and their failures, plain or TLS connects under the service's upstream
  TLS profile (``gateway.tls.upstream``: layers 3 and 4, as for HTTP).
- ``relay``: bytes both ways with backpressure and half-close.
- ``listener``: the listeners of a process; an ``ssl`` one serves the certificates of ``gateway.tls.served``
  (layer 1) exactly as the proxy listeners do.

``docs/stream.md`` says what is served and how it differs from Kong.
"""
