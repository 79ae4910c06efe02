"""Downstream HTTP/2 over TLS (ALPN ``h2`` on ``http2`` listeners): the connection, its streams, its limits."""

from gateway.downstream.http2.connection import H2Connection

__all__ = ["H2Connection"]
