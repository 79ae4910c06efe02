"""The TLS counters: bounded labels, verify codes, and what a scrape lists."""

from __future__ import annotations

from gateway.observability.exposition import Samples
from gateway.observability.tls_metrics import (
    HOSTNAME_MISMATCH_CODE,
    MAX_REASONS,
    TlsCounters,
    failure_reason,
)


def test_failure_reasons_are_short_fixed_words_or_openssls_reason() -> None:
    assert failure_reason("timeout", "SSL handshaking timed out") == "timeout"
    assert failure_reason("eof", "peer closed connection in SSL handshake") == "peer closed connection"
    assert failure_reason("verify", "certificate verify error: (20:unable to get local issuer certificate)") == (
        "certificate verify failed"
    )
    assert failure_reason("hostname", 'upstream SSL certificate does not match "a.test"') == "hostname mismatch"
    assert failure_reason("protocol", "SSL routines::Wrong Version Number ") == "wrong version number"
    assert failure_reason("protocol", "x" * 500) == "x" * 80
    assert failure_reason("protocol", "") == "unknown"


def test_the_reason_label_set_is_bounded() -> None:
    counters = TlsCounters()
    for index in range(MAX_REASONS + 10):
        counters.handshake_failure("downstream", "protocol", f"reason {index}")
    counters.handshake_failure("downstream", "protocol", "reason 3")  # a known one is still counted as itself
    assert len(counters.failures) == MAX_REASONS + 1  # plus "other"
    assert counters.failures[("downstream", "other")] == 10
    assert counters.failures[("downstream", "reason 3")] == 2


def test_upstream_failures_count_the_verify_code() -> None:
    counters = TlsCounters()
    counters.upstream_failure("svc", "verify", "certificate verify error: (20:...)", 20)
    counters.upstream_failure("svc", "verify", "certificate verify error: (20:...)", 20)
    counters.upstream_failure("svc", "hostname", "does not match", None)
    counters.upstream_failure("svc", "timeout", "timed out", None)
    assert counters.upstream_verify_failures == {("svc", "20"): 2, ("svc", str(HOSTNAME_MISMATCH_CODE)): 1}
    assert counters.failures == {
        ("upstream", "certificate verify failed"): 2,
        ("upstream", "hostname mismatch"): 1,
        ("upstream", "timeout"): 1,
    }


def test_a_scrape_lists_every_family_and_the_counts() -> None:
    counters = TlsCounters()
    counters.handshake("0.0.0.0:8443", "TLSv1.3", False)
    counters.handshake("0.0.0.0:8443", "TLSv1.3", True)
    counters.handshake("0.0.0.0:8443", None, False)
    counters.client_verification("success")
    counters.connection_counts("svc").new += 1
    counters.connection_counts("svc").reused += 1
    counters.upstream_session("svc", True)
    samples = Samples()
    counters.into(samples)
    assert samples.values["kong_tls_handshakes_total"] == {
        ("0.0.0.0:8443", "TLSv1.3", "false"): 1,
        ("0.0.0.0:8443", "TLSv1.3", "true"): 1,
        ("0.0.0.0:8443", "unknown", "false"): 1,
    }
    assert samples.values["kong_tls_handshake_failures_total"] == {}  # listed, empty
    assert samples.values["kong_upstream_connections_total"] == {("svc", "false"): 1, ("svc", "true"): 1}
    assert samples.values["kong_upstream_tls_sessions_total"] == {("svc", "true"): 1}
    assert samples.values["kong_tls_client_certificate_verifications_total"] == {("success",): 1}
    counters.clear()
    assert not counters.handshakes and not counters.upstream_connections


def test_a_services_connection_counts_outlive_it_and_list_only_what_was_counted() -> None:
    from gateway.observability.tls_metrics import TLS
    from gateway.upstream.target import ServiceTarget

    TLS.clear()
    row = {"id": "0e6c1a7e-0000-4000-8000-000000000001", "name": "counted", "host": "127.0.0.1", "port": 9}
    first = ServiceTarget(row, None, None, True)
    first.connections.reused += 2  # what the proxy does per request on a pooled connection
    rebuilt = ServiceTarget(row, None, None, True)  # the same service in a new snapshot
    assert rebuilt.connections is first.connections  # the counter goes on from where it was
    rebuilt.connections.new += 1
    TLS.connection_counts("counted").reused += 1  # by label: the same object
    assert TLS.upstream_connections[("counted", "true")] == 3
    assert TLS.upstream_connections[("counted", "false")] == 1
    unnamed = ServiceTarget({**row, "name": None, "host": "up.test"}, None, None, False)
    assert unnamed.connections is TLS.connection_counts("up.test")  # the label is the host then
    assert not any(service == "up.test" for service, _ in TLS.upstream_connections)  # nothing counted: no sample
    TLS.clear()
    assert first.connections.new == first.connections.reused == 0  # cleared in place: services keep their object
    assert TLS.upstream_connections == {}
