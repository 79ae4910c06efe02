"""The ``prometheus`` plugin (Kong OSS): Kong 3.x's metric names, labels and flags, served on ``GET /metrics``.

- ``metrics``: Kong's families as data, and the per-process counters the log phase updates;
- ``handler``: the log phase (which flags count what);
- ``exporter``: a scrape, summed over the worker processes, rendered by ``prometheus_client``.
"""

from gateway.plugins.prometheus.handler import NAME, Prometheus

__all__ = ["NAME", "Prometheus"]
