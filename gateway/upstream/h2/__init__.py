"""The HTTP/2 upstream client for ``grpc``/``grpcs`` services (Kong's ``grpc_pass``), on the ``h2`` state machine.

- ``request`` turns the HTTP/1.1 request bytes the exchange writes into one stream's HEADERS and DATA;
- ``stream`` (``H2UpstreamStream``) is one request on a shared connection, driven by the exchange through the surface
  of an HTTP/1.1 ``UpstreamConnection`` (bind, send, timers, flow control, abort);
- ``connection`` (``H2UpstreamConnection``) owns the socket (TCP or TLS) and the ``h2`` machine of many streams;
- ``pool`` (``H2Pool``) shares connections between concurrent streams, keyed by the protocol and the full TLS identity;
- ``connect`` opens them: h2 prior knowledge over TCP (``grpc``), TLS with ALPN ``h2`` (``grpcs``).
"""
