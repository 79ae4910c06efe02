"""TLS counters beyond Kong: always on, plain integers per process, turned into families only at scrape time.

Kong's prometheus plugin says nothing about TLS. These counters say how the gateway's TLS layers are doing
(``docs/metrics.md`` documents them as ours): handshakes on the ``ssl`` listeners and their failures, client
certificate verifications (mtls-auth), upstream verification failures by OpenSSL code, upstream connections opened
or reused, upstream sessions resumed. They are counted whether or not the ``prometheus`` plugin is configured, and
shown on every ``/metrics`` (Admin API and Status API).

Rules:

- One process-wide ``TLS`` object (``TlsCounters``): each event is one dict increment keyed by a tuple of label
  values; nothing is formatted, looked up or allocated beyond that tuple. The hooks sit where the event is already
  known (the listener's handshake callbacks, the exchange's connect, mtls-auth's verdict).
- Label sets are bounded: ``reason`` is a short classification (``timeout``, ``peer closed connection``,
  ``certificate verify failed``, ``hostname mismatch``) or OpenSSL's short reason text for a protocol failure
  (lower case, at most ``REASON_LENGTH`` characters), and after ``MAX_REASONS`` distinct texts any new one is
  counted as ``other``; ``code`` is OpenSSL's numeric ``X509_V_ERR_*``; ``service`` is a service's name (or host),
  bounded by the configuration; ``result`` and ``resumed``/``reused`` are fixed words.
"""

from __future__ import annotations

from typing import Any, Final

from gateway.observability.exposition import MetricSpec, Samples

__all__ = [
    "HOSTNAME_MISMATCH_CODE",
    "MAX_REASONS",
    "TLS",
    "TLS_SPECS",
    "TlsCounters",
    "failure_reason",
]

MAX_REASONS: Final = 64
REASON_LENGTH: Final = 80
#: OpenSSL's ``X509_V_ERR_HOSTNAME_MISMATCH``: nginx checks the name itself after the handshake, and a mismatch is
#: counted under this code, the one OpenSSL gives the same check
HOSTNAME_MISMATCH_CODE: Final = 62

HANDSHAKES: Final = "kong_tls_handshakes_total"
FAILURES: Final = "kong_tls_handshake_failures_total"
CLIENT_VERIFICATIONS: Final = "kong_tls_client_certificate_verifications_total"
UPSTREAM_VERIFY_FAILURES: Final = "kong_upstream_tls_verify_failures_total"
UPSTREAM_CONNECTIONS: Final = "kong_upstream_connections_total"
UPSTREAM_SESSIONS: Final = "kong_upstream_tls_sessions_total"
CERTIFICATE_EXPIRY: Final = "kong_tls_certificate_expiry_timestamp_seconds"

TLS_SPECS: Final = (
    MetricSpec(
        HANDSHAKES,
        "counter",
        "Completed TLS handshakes on the proxy's ssl listeners (beyond Kong)",
        ("listener", "version", "resumed"),
    ),
    MetricSpec(
        FAILURES,
        "counter",
        "Failed TLS handshakes, downstream (ssl listeners) and upstream (services), by reason (beyond Kong)",
        ("side", "reason"),
    ),
    MetricSpec(
        CLIENT_VERIFICATIONS,
        "counter",
        "Client certificate verifications by mtls-auth: success, failed, revoked, none (beyond Kong)",
        ("result",),
    ),
    MetricSpec(
        UPSTREAM_VERIFY_FAILURES,
        "counter",
        "Upstream certificate verification failures by OpenSSL X509_V_ERR code (beyond Kong)",
        ("service", "code"),
    ),
    MetricSpec(
        UPSTREAM_CONNECTIONS,
        "counter",
        "Upstream connections used by proxied requests: opened (reused=false) or taken from the pool (beyond Kong)",
        ("service", "reused"),
    ),
    MetricSpec(
        UPSTREAM_SESSIONS,
        "counter",
        "Upstream TLS handshakes completed, by whether the session was resumed (beyond Kong)",
        ("service", "resumed"),
    ),
    MetricSpec(
        CERTIFICATE_EXPIRY,
        "gauge",
        "notAfter of every certificate the gateway serves or presents, as a Unix timestamp (beyond Kong)",
        ("certificate", "sni"),
    ),
)
"""Our families, in exposition order."""

_BOOL: Final = ("false", "true")


def failure_reason(kind: str, reason: str) -> str:
    """The ``reason`` label of a failed handshake (a ``TlsHandshakeError``'s ``kind`` and ``reason``)."""
    if kind == "timeout":
        return "timeout"
    if kind == "eof":
        return "peer closed connection"
    if kind == "verify":
        return "certificate verify failed"
    if kind == "hostname":
        return "hostname mismatch"
    text = reason.strip().lower()
    if text.startswith("ssl routines::"):
        text = text[len("ssl routines::") :]
    return text[:REASON_LENGTH] or "unknown"


class ConnectionCounts:
    """``kong_upstream_connections_total`` of one service label: connections opened (``new``) and taken from the pool
    (``reused``). A compiled service keeps its label's object (``ServiceTarget.connections``), so the count every
    proxied request makes is the increment of a native integer, not a method call, a dict lookup and a new int object
    above 256 (~220 instructions per request in S1); the object outlives the service (a new snapshot's service of the
    same label gets the same one), so the counter only grows."""

    __slots__ = ("new", "reused")

    def __init__(self) -> None:
        self.new = 0
        self.reused = 0


class TlsCounters:
    """This process's TLS counters (dicts of label tuples -> int); ``TLS`` is the process-wide instance."""

    __slots__ = (
        "client_verifications",
        "connections",
        "failures",
        "handshakes",
        "upstream_sessions",
        "upstream_verify_failures",
    )

    def __init__(self) -> None:
        self.handshakes: dict[tuple[str, str, str], int] = {}
        self.failures: dict[tuple[str, str], int] = {}
        self.client_verifications: dict[tuple[str], int] = {}
        self.upstream_verify_failures: dict[tuple[str, str], int] = {}
        #: ``kong_upstream_connections_total`` by service label (``ConnectionCounts``: the one counter every
        #: proxied request touches)
        self.connections: dict[str, ConnectionCounts] = {}
        self.upstream_sessions: dict[tuple[str, str], int] = {}

    # -- events ----------------------------------------------------------------------------------------------
    def handshake(self, listener: str, version: str | None, resumed: bool) -> None:
        """A downstream handshake completed on ``listener`` (``host:port``)."""
        key = (listener, version or "unknown", _BOOL[resumed])
        counts = self.handshakes
        counts[key] = counts.get(key, 0) + 1

    def handshake_failure(self, side: str, kind: str, reason: str) -> None:
        """A handshake failed: ``side`` is ``downstream`` or ``upstream``; see ``failure_reason``."""
        text = failure_reason(kind, reason)
        counts = self.failures
        key = (side, text)
        if key not in counts and len(counts) >= MAX_REASONS:
            key = (side, "other")
        counts[key] = counts.get(key, 0) + 1

    def client_verification(self, result: str) -> None:
        """mtls-auth verified (or could not verify) a client certificate: ``success``, ``failed``, ``revoked``,
        ``none`` (no certificate sent)."""
        key = (result,)
        counts = self.client_verifications
        counts[key] = counts.get(key, 0) + 1

    def upstream_failure(self, service: str, kind: str, reason: str, verify_code: int | None) -> None:
        """An upstream handshake failed; a verification failure is also counted by its OpenSSL code."""
        self.handshake_failure("upstream", kind, reason)
        code = verify_code if kind == "verify" else HOSTNAME_MISMATCH_CODE if kind == "hostname" else None
        if code is not None:
            key = (service, str(code))
            counts = self.upstream_verify_failures
            counts[key] = counts.get(key, 0) + 1

    def connection_counts(self, service: str) -> ConnectionCounts:
        """The counts of one service label, made on first use (``setdefault``: a snapshot may be built on another
        thread than the loop's)."""
        counts = self.connections.get(service)
        if counts is None:
            counts = self.connections.setdefault(service, ConnectionCounts())
        return counts

    @property
    def upstream_connections(self) -> dict[tuple[str, str], int]:
        """``kong_upstream_connections_total``'s samples: ``(service, reused)`` -> count, for the counts above 0
        (a label appears once a connection of its kind was counted, as before the objects)."""
        merged: dict[tuple[str, str], int] = {}
        for service, counts in list(self.connections.items()):
            if counts.new:
                merged[(service, _BOOL[False])] = counts.new
            if counts.reused:
                merged[(service, _BOOL[True])] = counts.reused
        return merged

    def upstream_session(self, service: str, resumed: bool) -> None:
        key = (service, _BOOL[resumed])
        counts = self.upstream_sessions
        counts[key] = counts.get(key, 0) + 1

    # -- scrape ----------------------------------------------------------------------------------------------
    def into(self, samples: Samples) -> None:
        """Add this process's counts to ``samples`` (every family is present, so a scrape always lists them)."""
        table: tuple[tuple[str, dict[Any, int]], ...] = (
            (HANDSHAKES, self.handshakes),
            (FAILURES, self.failures),
            (CLIENT_VERIFICATIONS, self.client_verifications),
            (UPSTREAM_VERIFY_FAILURES, self.upstream_verify_failures),
            (UPSTREAM_CONNECTIONS, self.upstream_connections),
            (UPSTREAM_SESSIONS, self.upstream_sessions),
        )
        for name, counts in table:
            samples.touch(name)
            for labels, value in list(counts.items()):
                samples.add(name, labels, value)

    def clear(self) -> None:
        """Forget every count (the tests start from zero). Named one by one: compiled, the class has no
        ``__slots__`` to loop over (``gateway/compiled.py``)."""
        self.handshakes.clear()
        self.failures.clear()
        self.client_verifications.clear()
        self.upstream_verify_failures.clear()
        for counts in self.connections.values():  # kept: services hold them
            counts.new = 0
            counts.reused = 0
        self.upstream_sessions.clear()


TLS: Final = TlsCounters()
"""This process's counters: every hook increments this object."""
