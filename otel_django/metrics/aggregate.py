"""Explicit-bucket histograms aggregated in place, for the instruments of the request path.

The SDK's ``Histogram.record`` validates the attribute dict, hashes it and builds a
measurement object on every call: 6 µs on a quiet machine, and the request path records
three to four histograms per request (``benchmarks/README.md``). These histograms know their
attribute names up front and are keyed by the tuple of values, so a measurement is one
bisect, one dict lookup and three additions under a lock. The pipeline reads them into the
same snapshot as the SDK's metrics at scrape time, so they are merged across workers and
rendered like any other histogram.

A histogram holds at most ``limit`` series: beyond that, measurements with new attribute
values go to the ``otel.metric.overflow`` series, by the rule the SDK's streams apply
(``cardinality.series_key``).

Exemplars: a measurement recorded with the span context of its span may become the exemplar
of its bucket (one per bucket per series, the newest), as ``OTEL_METRICS_EXEMPLAR_FILTER``
says: ``trace_based`` (the default) takes sampled spans only, ``always_on`` any valid span,
``always_off`` none. A measurement without a span context never makes one: an exemplar is a
link to a trace. The span context is kept as it is; its ids are formatted only when scraped.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from bisect import bisect_left
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import SpanContext

from .cardinality import OVERFLOW_ATTRIBUTES, series_key
from .exposition import ALL, HISTOGRAM, OVERFLOW_LABELS, Exemplar, Family
from .naming import label_string, metric_name

AttributeValues = tuple[Any, ...]  # one value per attribute name, None where absent


@dataclass(frozen=True, slots=True)
class HistogramSpec:
    """What a histogram is: its OTel name, unit, description, buckets and attribute names."""

    name: str
    unit: str
    description: str
    bounds: tuple[float, ...]
    attribute_names: tuple[str, ...]

    def attributes(self, values: AttributeValues) -> dict[str, Any]:
        names = self.attribute_names
        return {name: v for name, v in zip(names, values, strict=True) if v is not None}


_OVERFLOW: Hashable = object()

EXEMPLAR_FILTERS = ("trace_based", "always_on", "always_off")
_OFF, _SAMPLED, _ANY = 0, 1, 2
_MODES = {"always_off": _OFF, "trace_based": _SAMPLED, "always_on": _ANY}

# As recorded: value, time.time(), the span context (its ids are read when scraped).
_RawExemplar = tuple[float, float, SpanContext]


class Aggregate:
    """The cumulative series of one histogram in this process."""

    __slots__ = (
        "__weakref__",
        "_exemplars",
        "_formatted",
        "_limit",
        "_lock",
        "_series",
        "family_name",
        "spec",
    )

    def __init__(
        self, spec: HistogramSpec, limit: int, exemplar_filter: str = "trace_based"
    ) -> None:
        if exemplar_filter not in _MODES:
            raise ValueError(f"exemplar filter must be one of {', '.join(EXEMPLAR_FILTERS)}")
        self.spec = spec
        self.family_name = metric_name(spec.name, spec.unit, False)
        self._limit = limit
        self._exemplars = _MODES[exemplar_filter]
        self._lock = threading.Lock()
        # values -> [count, sum, bucket counts, label string, exemplars per bucket or None]
        self._series: dict[Hashable, list[Any]] = {}
        # id(raw exemplar) -> (raw, formatted): most exemplars are the same from one scrape to
        # the next. Only the scraping thread uses it.
        self._formatted: dict[int, tuple[_RawExemplar, Exemplar | None]] = {}
        _aggregates.add(self)

    def record(
        self, value: float, values: AttributeValues, span_context: SpanContext | None = None
    ) -> None:
        """``span_context``: of the span this measurement belongs to, for its exemplar."""
        if not value >= 0:  # as the SDK does, negative values (and NaN) are dropped
            return
        index = bisect_left(self.spec.bounds, value)
        exemplar: _RawExemplar | None = None
        if span_context is not None:
            mode = self._exemplars
            if mode == _SAMPLED:
                if span_context.trace_flags & 1:  # sampled: valid by construction
                    exemplar = (value, time.time(), span_context)
            elif mode == _ANY and span_context.is_valid:
                exemplar = (value, time.time(), span_context)
        with self._lock:
            series = self._series.get(values)
            if series is None:
                series = self._new_series(values)
            series[0] += 1
            series[1] += value
            series[2][index] += 1
            if exemplar is not None:
                exemplars = series[4]
                if exemplars is None:
                    exemplars = series[4] = [None] * len(series[2])
                exemplars[index] = exemplar

    def _new_series(self, values: AttributeValues) -> list[Any]:
        key = series_key(values, self._series, self._limit, _OVERFLOW)
        if key is _OVERFLOW:
            existing = self._series.get(key)
            if existing is not None:
                return existing
            label = OVERFLOW_LABELS
        else:
            label = label_string(self.spec.attributes(values))
        series = self._series[key] = [0, 0, [0] * (len(self.spec.bounds) + 1), label, None]
        return series

    def family(self) -> Family:
        """The series as a snapshot family (copies, taken under the lock)."""
        with self._lock:
            points = {
                s[3]: [s[0], s[1], list(s[2])]
                if s[4] is None
                else [s[0], s[1], list(s[2]), s[4][:]]
                for s in self._series.values()
            }
        cache = self._formatted
        seen = 0
        for point in points.values():
            if len(point) > 3:
                exemplars = point[3]
                for index, raw in enumerate(exemplars):
                    if raw is None:
                        continue
                    seen += 1
                    cached = cache.get(id(raw))
                    if cached is None or cached[0] is not raw:
                        cached = cache[id(raw)] = (raw, _formatted(raw))
                    exemplars[index] = cached[1]
        if len(cache) > 2 * seen + 1000:
            self._formatted = {}
        spec = self.spec
        return Family(self.family_name, HISTOGRAM, spec.description, ALL, spec.bounds, points)

    def points(self) -> list[tuple[dict[str, Any], int, float, list[int]]]:
        """``(attributes, count, sum, bucket counts)`` per series, copies taken under the lock;
        the overflow series has ``otel.metric.overflow=true``. For OTLP push (``push.py``)."""
        with self._lock:
            items = [(key, s[0], s[1], list(s[2])) for key, s in self._series.items()]
        attributes = self.spec.attributes
        return [
            (dict(OVERFLOW_ATTRIBUTES) if key is _OVERFLOW else attributes(key), c, t, b)  # type: ignore[arg-type]
            for key, c, t, b in items
        ]


def _formatted(raw: _RawExemplar) -> Exemplar | None:
    value, timestamp, context = raw
    trace_id, span_id = context.trace_id, context.span_id
    if not trace_id or not span_id:
        return None
    return (value, timestamp, format(trace_id, "032x"), format(span_id, "016x"))


_aggregates: weakref.WeakSet[Aggregate] = weakref.WeakSet()


def _reinit_locks() -> None:
    """A fork copies a lock held by another thread as held forever: new locks in the child."""
    for aggregate in list(_aggregates):
        aggregate._lock = threading.Lock()


os.register_at_fork(after_in_child=_reinit_locks)
