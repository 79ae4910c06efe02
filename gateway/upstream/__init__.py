"""The upstream side: reaching a service, keeping its connections, balancing its targets, checking their health.

- ``service`` (``ServiceTarget``, connectors, pool keys), ``connection`` (``UpstreamConnection``: one HTTP/1.1
  client connection), ``pool`` (the keepalive pool keyed by the full TLS identity), ``failures`` (how a try fails,
  as data).
- ``balancer``, ``algorithms``, ``dns`` (Upstream entities and targets, Kong's algorithms, DNS with TTLs),
  ``healthcheck`` and ``probe`` (active and passive health checks).

The TLS rules for upstream connections (Kong's layers 3 and 4) are in ``gateway.tls.upstream``.
"""
