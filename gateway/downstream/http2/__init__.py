"""Downstream HTTP/2 on ``http2`` listeners (ALPN ``h2``, or h2c with prior knowledge): connection, streams, limits."""

from gateway.downstream.http2.connection import H2Connection

__all__ = ["H2Connection"]
