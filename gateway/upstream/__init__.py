"""The upstream side: reaching a service, keeping its connections, balancing its targets, checking their health.

- ``service`` (``ServiceTarget``, connectors, pool keys), ``connection`` (``UpstreamConnection``: one HTTP/1.1
  client connection), ``pool`` (the keepalive pool keyed by the full TLS identity), ``failures`` (how a try fails,
  as data).
- ``targets`` (targets, addresses, a request's handle), ``balancer``, ``algorithms``, ``dns`` (Upstream entities,
  Kong's algorithms, DNS with TTLs); ``health`` (a target's health, the checks' settings), ``checker`` (one
  upstream's counters and probe loops), ``healthcheck`` (the registry across snapshots) and ``probe``.

The TLS rules for upstream connections (Kong's layers 3 and 4) are in ``gateway.tls.upstream``.
"""
