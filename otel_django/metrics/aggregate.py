"""Explicit-bucket histograms aggregated in place, for the instruments of the request path.

The SDK's ``Histogram.record`` validates the attribute dict, hashes it and builds a
measurement object on every call: 6 µs on a quiet machine, and the request path records
three to four histograms per request (``benchmarks/README.md``). These histograms know their
attribute names up front and are keyed by the tuple of values, so a measurement is one
bisect, one dict lookup and three additions under a lock. The pipeline reads them into the
same snapshot as the SDK's metrics at scrape time, so they are merged across workers and
rendered like any other histogram.

A histogram holds at most ``limit`` series: beyond that, measurements with new attribute
values go to the ``otel.metric.overflow`` series, as the SDK's streams do
(``cardinality.py``).
"""

from __future__ import annotations

import os
import threading
import weakref
from bisect import bisect_left
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from .exposition import ALL, HISTOGRAM, OVERFLOW_LABELS, Family
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


class Aggregate:
    """The cumulative series of one histogram in this process."""

    __slots__ = ("__weakref__", "_limit", "_lock", "_series", "family_name", "spec")

    def __init__(self, spec: HistogramSpec, limit: int) -> None:
        self.spec = spec
        self.family_name = metric_name(spec.name, spec.unit, False)
        self._limit = limit
        self._lock = threading.Lock()
        # values -> [count, sum, bucket counts, label string]
        self._series: dict[Hashable, list[Any]] = {}
        _aggregates.add(self)

    def record(self, value: float, values: AttributeValues) -> None:
        if not value >= 0:  # as the SDK does, negative values (and NaN) are dropped
            return
        index = bisect_left(self.spec.bounds, value)
        with self._lock:
            series = self._series.get(values)
            if series is None:
                series = self._new_series(values)
            series[0] += 1
            series[1] += value
            series[2][index] += 1

    def _new_series(self, values: AttributeValues) -> list[Any]:
        key: Hashable = values
        if len(self._series) >= self._limit - 1:
            key = _OVERFLOW
            existing = self._series.get(key)
            if existing is not None:
                return existing
            label = OVERFLOW_LABELS
        else:
            label = label_string(self.spec.attributes(values))
        series = self._series[key] = [0, 0, [0] * (len(self.spec.bounds) + 1), label]
        return series

    def family(self) -> Family:
        """The series as a snapshot family (copies, taken under the lock)."""
        with self._lock:
            points = {s[3]: [s[0], s[1], list(s[2])] for s in self._series.values()}
        spec = self.spec
        return Family(self.family_name, HISTOGRAM, spec.description, ALL, spec.bounds, points)

    def points(self) -> list[tuple[dict[str, Any], int, float, list[int]]]:
        """``(attributes, count, sum, bucket counts)`` per series, copies taken under the lock;
        the overflow series has ``otel.metric.overflow=true``. For OTLP push (``push.py``)."""
        with self._lock:
            items = [(key, s[0], s[1], list(s[2])) for key, s in self._series.items()]
        attributes = self.spec.attributes
        return [
            ({"otel.metric.overflow": True} if key is _OVERFLOW else attributes(key), c, t, b)  # type: ignore[arg-type]
            for key, c, t, b in items
        ]


_aggregates: weakref.WeakSet[Aggregate] = weakref.WeakSet()


def _reinit_locks() -> None:
    """A fork copies a lock held by another thread as held forever: new locks in the child."""
    for aggregate in list(_aggregates):
        aggregate._lock = threading.Lock()


os.register_at_fork(after_in_child=_reinit_locks)
