"""``Samples``: summed across processes, through the channel's JSON, rendered by ``prometheus_client`` and read back
by its parser exactly."""

from __future__ import annotations

import json

from prometheus_client.parser import text_string_to_metric_families

from gateway.observability.exposition import MetricSpec, Samples, render

SPECS = (
    MetricSpec("t_requests_total", "counter", "requests", ("route", "code")),
    MetricSpec("t_bytes", "counter", "bytes, no _total suffix", ("route",)),
    MetricSpec("t_open", "gauge", "open things", ("pid",)),
    MetricSpec("t_latency_ms", "histogram", "latency", ("route",), (1, 5, 10)),
    MetricSpec("t_never_total", "counter", "never counted", ("x",)),
)


def parsed(text: bytes) -> dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    out: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            out.setdefault(family.name, {})[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def worker(requests: int, latencies: list[int], pid: str) -> Samples:
    samples = Samples()
    for _ in range(requests):
        samples.add("t_requests_total", ("r", "200"), 1)
    samples.add("t_bytes", ("r",), 100 * requests)
    samples.set("t_open", (pid,), requests)
    for value in latencies:
        counts = [0, 0, 0, 0, value]  # buckets 1, 5, 10, +Inf, then the sum
        counts[next((i for i, bound in enumerate((1, 5, 10)) if value <= bound), 3)] += 1
        samples.add_histogram("t_latency_ms", ("r",), counts)
    return samples


def test_shares_of_processes_sum_through_the_channel_json() -> None:
    total = Samples()
    for share in (worker(3, [1, 7], "11"), worker(2, [5, 50], "12")):
        total.merge(Samples.from_json(json.loads(json.dumps(share.to_json()))))
    got = parsed(render(SPECS, total))
    assert got["t_requests"] == {("t_requests_total", (("code", "200"), ("route", "r"))): 5.0}
    # Kong's ``kong_bandwidth_bytes`` keeps its name: an untyped family rather than prometheus_client's ``_total``
    assert got["t_bytes"] == {("t_bytes", (("route", "r"),)): 500.0}
    assert got["t_open"] == {("t_open", (("pid", "11"),)): 3.0, ("t_open", (("pid", "12"),)): 2.0}
    latency = got["t_latency_ms"]
    buckets = {dict(labels)["le"]: value for (name, labels), value in latency.items() if name.endswith("_bucket")}
    assert buckets == {"1": 1.0, "5": 2.0, "10": 3.0, "+Inf": 4.0}  # cumulative, as Prometheus reads them
    assert latency[("t_latency_ms_count", (("route", "r"),))] == 4.0
    assert latency[("t_latency_ms_sum", (("route", "r"),))] == 63.0
    assert "t_never" not in got  # a family nothing counted is not listed


def test_a_touched_family_is_listed_without_samples() -> None:
    samples = Samples()
    samples.touch("t_never_total")
    text = render(SPECS, samples).decode()
    assert "# TYPE t_never_total counter" in text and "t_never_total{" not in text


def test_malformed_shares_are_skipped_not_trusted() -> None:
    data = {
        "t_requests_total": [["r", "200", 2], ["r", 3], "x", [], ["r", "500", "many"]],
        7: [["a", 1]],
        "t_open": "nope",
    }
    samples = Samples.from_json(data)
    assert samples.values["t_requests_total"] == {("r", "200"): 2, ("r",): 3}
    assert samples.values.get("t_open") is None
    # a sample whose labels do not fit its family is left out of the exposition
    assert parsed(render(SPECS, samples))["t_requests"] == {("t_requests_total", (("code", "200"), ("route", "r"))): 2}
    assert Samples.from_json(["not", "a", "mapping"]).values == {}


def test_set_replaces_and_add_accumulates() -> None:
    samples = Samples()
    samples.set("t_open", ("1",), 5)
    samples.set("t_open", ("1",), 7)
    samples.add("t_requests_total", ("r", "200"), 1)
    samples.add("t_requests_total", ("r", "200"), 2)
    assert samples.get("t_open", ("1",)) == 7
    assert samples.get("t_requests_total", ("r", "200")) == 3
