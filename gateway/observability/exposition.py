"""Metric samples as plain data, summed across processes, rendered by ``prometheus_client`` only at scrape time.

Why plain data: the hot path must pay a dict increment, not a library call, and the samples of every worker process
must cross the master <-> worker channel (JSON) to be summed. So each process keeps its counters as integers in
dicts keyed by label-value tuples; a scrape turns them into a ``Samples`` (this module), the master merges the
``Samples`` of every process, and ``render`` hands the result to ``prometheus_client``'s text exposition through a
collector built for that one scrape.

Every value in a ``Samples`` is summable, so merging is addition:

- counters and gauges: ``labels -> number``; a gauge that belongs to one process carries its ``pid`` label, so
  processes never collide on it, and a gauge that nginx reports node-wide (``stub_status`` connections) is the sum
  of the processes' own counts, as ``GET /status`` sums them;
- histograms: ``labels -> [count in bucket 0, ..., count in +Inf, sum]`` (counts per bucket, not cumulative; the
  rendering accumulates them).

A ``MetricSpec`` says what a name is (type, help, label names, buckets): the specs are tables of data next to the
code that counts (Kong's families in ``gateway.plugins.prometheus.metrics``, ours in
``gateway.observability.tls_metrics``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    UnknownMetricFamily,
)

__all__ = ["CONTENT_TYPE", "MetricSpec", "Samples", "render"]

CONTENT_TYPE: Final = "text/plain; charset=UTF-8"
"""What Kong's exporter sends (``ngx.header["Content-Type"]`` in ``exporter.collect``)."""

Kind = Literal["counter", "gauge", "histogram"]
Labels = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric family: full name (``kong_`` included), type, help text, label names, histogram buckets."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()


class Samples:
    """Summable samples by metric name, then by label values (see the module docstring)."""

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: dict[str, dict[Labels, Any]] = {}

    def add(self, name: str, labels: Labels, value: float) -> None:
        """Add ``value`` to a counter or gauge sample (creating it at 0)."""
        family = self.values.setdefault(name, {})
        family[labels] = family.get(labels, 0) + value

    def set(self, name: str, labels: Labels, value: float) -> None:
        """Set a sample (a fact of this process or of the master alone: never summed with itself)."""
        self.values.setdefault(name, {})[labels] = value

    def add_histogram(self, name: str, labels: Labels, counts: Sequence[float]) -> None:
        """Add per-bucket counts (``+Inf`` included) and the sum, the last element."""
        family = self.values.setdefault(name, {})
        current = family.get(labels)
        if current is None:
            family[labels] = list(counts)
        else:
            for index, value in enumerate(counts):
                current[index] += value

    def touch(self, name: str) -> None:
        """Make ``name`` present (rendered with its help and type) even with no sample yet."""
        self.values.setdefault(name, {})

    def merge(self, other: Samples) -> None:
        for name, family in other.values.items():
            mine = self.values.setdefault(name, {})
            for labels, value in family.items():
                current = mine.get(labels)
                if current is None:
                    mine[labels] = list(value) if isinstance(value, list) else value
                elif isinstance(current, list):
                    for index, item in enumerate(value):
                        current[index] += item
                else:
                    mine[labels] = current + value

    def get(self, name: str, labels: Labels) -> Any:
        return self.values.get(name, {}).get(labels)

    # -- the channel's JSON ---------------------------------------------------------------------------------
    def to_json(self) -> dict[str, list[list[Any]]]:
        """``{name: [[*labels, value], ...]}``: label values are strings, the value is the last element."""
        return {name: [[*labels, value] for labels, value in family.items()] for name, family in self.values.items()}

    @classmethod
    def from_json(cls, data: Any) -> Samples:
        """The inverse of ``to_json``; anything malformed is skipped (a worker's answer is data, not trusted code)."""
        samples = cls()
        if not isinstance(data, Mapping):
            return samples
        for name, rows in data.items():
            if not isinstance(name, str) or not isinstance(rows, list):
                continue
            family = samples.values.setdefault(name, {})
            for row in rows:
                if not isinstance(row, list) or not row or not all(isinstance(v, str) for v in row[:-1]):
                    continue
                value = row[-1]
                if isinstance(value, int | float) or (
                    isinstance(value, list) and all(isinstance(v, int | float) for v in value)
                ):
                    family[tuple(row[:-1])] = value
        return samples


def _family(spec: MetricSpec, family: Mapping[Labels, Any]) -> Metric:
    labels = list(spec.labels)
    family = {values: value for values, value in family.items() if len(values) == len(labels)}  # a bad share
    if spec.kind == "counter" and not spec.name.endswith("_total"):
        # prometheus_client's text format forces ``_total`` onto a counter's name; Kong's ``kong_bandwidth_bytes``
        # has none, so it keeps its name as an untyped family (what dashboards and rate() query is the name)
        untyped = UnknownMetricFamily(spec.name, spec.help, labels=labels)
        for values, value in sorted(family.items()):
            untyped.add_metric(list(values), value)
        return untyped
    if spec.kind == "counter":
        counter = CounterMetricFamily(spec.name, spec.help, labels=labels)
        for values, value in sorted(family.items()):
            counter.add_metric(list(values), value)
        return counter
    if spec.kind == "gauge":
        gauge = GaugeMetricFamily(spec.name, spec.help, labels=labels)
        for values, value in sorted(family.items()):
            gauge.add_metric(list(values), value)
        return gauge
    histogram = HistogramMetricFamily(spec.name, spec.help, labels=labels)
    bounds = [_bound(b) for b in spec.buckets] + ["+Inf"]
    for values, counts in sorted(family.items()):
        if len(counts) != len(bounds) + 1:
            continue  # a process that counted with other buckets (cannot happen within one version)
        running = 0.0
        buckets = []
        for bound, count in zip(bounds, counts, strict=False):
            running += count
            buckets.append((bound, running))
        histogram.add_metric(list(values), buckets, sum_value=counts[-1])
    return histogram


def _bound(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class _Collector:
    """A one-scrape collector over already merged samples (``prometheus_client``'s custom-collector protocol)."""

    def __init__(self, specs: Iterable[MetricSpec], samples: Samples) -> None:
        self._specs = list(specs)
        self._samples = samples

    def collect(self) -> Iterator[Metric]:
        for spec in self._specs:
            family = self._samples.values.get(spec.name)
            if family is None:
                continue  # never counted in any process, or a family switched off: not listed (as Kong)
            yield _family(spec, family)


def render(specs: Iterable[MetricSpec], samples: Samples) -> bytes:
    """The text exposition of ``samples`` for the families of ``specs`` that are present, in ``specs`` order."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(specs, samples))
    return generate_latest(registry)
