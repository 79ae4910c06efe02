"""``GET /metrics`` (Kong's ``exporter.metric_data``): every process's share, summed, plus the node's own facts.

Each process that serves traffic contributes its ``process_share``: its per-request counters (``metrics.HTTP``), its
TLS counters (``observability.tls_metrics.TLS``) and its resident memory. With ``worker_processes`` > 1 the master
asks its workers for theirs over their channel (the ``stats`` message that ``GET /status`` uses) and adds what only
the master knows: the node id, the datastore, target health (the master runs the probes), the certificates'
expiry, the nginx-style connection counters summed over the processes. ``exposition`` renders the lot with
``prometheus_client``.

Kong's rule for what is exported: with no prometheus plugin instance configured, only its node-level gauges
(connections, requests, datastore, node info, worker memory: its ``LOCAL_STORAGE`` metrics); the per-request
families and ``kong_nginx_metric_errors_total`` appear once an instance is configured (Kong's
``IS_PROMETHEUS_ENABLED``), and ``kong_upstream_target_health`` when an instance has ``upstream_health_metrics``.
Our TLS families are always there.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from gateway.observability.exposition import Samples, render
from gateway.observability.tls_metrics import CERTIFICATE_EXPIRY, TLS, TLS_SPECS
from gateway.plugins.prometheus.metrics import (
    CONNECTIONS,
    DATASTORE,
    HTTP,
    KONG_SPECS,
    METRIC_ERRORS,
    NODE_INFO,
    PLUGIN_FAMILIES,
    REQUESTS_TOTAL,
    SUBSYSTEM,
    TARGET_HEALTH,
    WORKER_MEMORY,
)

__all__ = ["HEALTH_STATES", "NodeFacts", "exposition", "process_share", "resident_bytes"]

#: Kong's ``upstream_target_addr_health_table`` states, one sample each per address
HEALTH_STATES: Final = ("healthchecks_off", "healthy", "unhealthy", "dns_error")
#: nginx ``stub_status`` counter -> Kong's ``state`` label
_STATES: Final = (
    ("connections_accepted", "accepted"),
    ("connections_handled", "handled"),
    ("total_requests", "total"),
    ("connections_active", "active"),
    ("connections_reading", "reading"),
    ("connections_writing", "writing"),
    ("connections_waiting", "waiting"),
)


def resident_bytes() -> int:
    """This process's resident set size (``/proc/self/statm``; the peak RSS where there is no ``/proc``)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def process_share() -> dict[str, Any]:
    """This process's counters and memory, JSON-able (a worker's answer to a metrics ``stats`` request)."""
    samples = Samples()
    HTTP.into(samples)
    TLS.into(samples)
    return {"samples": samples.to_json(), "pid": os.getpid(), "rss": resident_bytes()}


@dataclass(slots=True)
class NodeFacts:
    """What the master alone knows, for one scrape.

    Attributes:
        node_id / version: the ``kong_node_info`` labels.
        counters: the ``stub_status`` counters summed over the processes (``GET /status``'s ``server``).
        memory: (pid, resident bytes) of every process serving traffic.
        db_reachable: the datastore answered.
        configured: at least one prometheus plugin instance is configured.
        health: (upstream, target, address, state) rows when an instance asks for ``upstream_health_metrics``,
            else None; ``address`` is empty and ``state`` ``dns_error`` for a target without addresses.
        certificates: ``((certificate, sni), notAfter)`` samples (``observability.cert_expiry``).
        errors: scrape failures (a worker that did not answer in time).
    """

    node_id: str
    version: str
    counters: Mapping[str, int] = field(default_factory=dict)
    memory: Sequence[tuple[int, int]] = ()
    db_reachable: bool = True
    configured: bool = False
    health: Iterable[tuple[str, str, str, str]] | None = None
    certificates: Iterable[tuple[tuple[str, str], float]] = ()
    errors: int = 0


def _node_samples(samples: Samples, facts: NodeFacts) -> None:
    node = facts.node_id
    for counter, state in _STATES:
        samples.set(CONNECTIONS, (node, SUBSYSTEM, state), facts.counters.get(counter, 0))
    samples.set(REQUESTS_TOTAL, (node, SUBSYSTEM), facts.counters.get("total_requests", 0))
    samples.set(DATASTORE, (), 1 if facts.db_reachable else 0)
    samples.set(NODE_INFO, (node, facts.version), 1)
    for pid, rss in facts.memory:
        samples.set(WORKER_MEMORY, (node, str(pid), SUBSYSTEM), rss)
    if facts.health is not None:
        samples.touch(TARGET_HEALTH)
        for upstream, target, address, status in facts.health:
            for state in HEALTH_STATES:
                samples.set(TARGET_HEALTH, (upstream, target, address, state, SUBSYSTEM), 1 if state == status else 0)
    samples.touch(CERTIFICATE_EXPIRY)
    for labels, expiry in facts.certificates:
        samples.set(CERTIFICATE_EXPIRY, labels, expiry)


def exposition(shares: Iterable[Samples], facts: NodeFacts) -> bytes:
    """The text of ``/metrics``: every process's share summed, the node facts, Kong's families then ours."""
    samples = Samples()
    for share in shares:
        samples.merge(share)
    if facts.configured:
        samples.add(METRIC_ERRORS, (), facts.errors)
    else:
        for name in PLUGIN_FAMILIES:
            samples.values.pop(name, None)
    _node_samples(samples, facts)
    return render((*KONG_SPECS, *TLS_SPECS), samples)
