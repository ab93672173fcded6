"""The per-metric cardinality limit: the one rule of which attribute sets keep a series.

``METRICS_CARDINALITY_LIMIT`` counts series, the overflow series included: a metric holds at
most ``limit - 1`` attribute sets of its own, and measurements with any other attribute set
are recorded under ``{"otel.metric.overflow": True}``, so totals stay exact and at most
``limit`` series exist per metric.

The SDK's streams apply it themselves (``MetricReader(cardinality_limits=…)``, from
opentelemetry-sdk 1.45.2), with :func:`sdk_limits`: the SDK keeps ``cardinality_limit``
attribute sets *plus* the overflow point, so it is given ``limit - 1``. Older SDKs get the same
rule from ``otel_django._compat``. otel_django's in-place histograms (``aggregate.py``) and the
merge of snapshots (``exposition.merge_into``) use :func:`series_key`, which decides as the
SDK does: a new attribute set gets a series of its own while the metric holds fewer than
``limit - 1`` series.
"""

from __future__ import annotations

import inspect
from collections.abc import Collection
from typing import Any, TypeVar

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import MetricReader

from .. import _compat

__all__ = [
    "OVERFLOW_ATTRIBUTES",
    "reader_options",
    "sdk_limits",
    "sdk_stream_limit",
    "series_key",
]

OVERFLOW_ATTRIBUTES = {"otel.metric.overflow": True}

K = TypeVar("K")


def sdk_stream_limit(limit: int) -> int:
    """The SDK's ``cardinality_limit`` for otel_django's ``limit``: the SDK does not count
    the overflow point, otel_django does."""
    return limit - 1


def sdk_limits(limit: int) -> dict[type, int]:
    """``cardinality_limits=`` for a ``MetricReader``: every instrument class."""
    stream = sdk_stream_limit(limit)
    classes = (
        Counter,
        UpDownCounter,
        Histogram,
        _compat.sdk_gauge_class(),
        ObservableCounter,
        ObservableUpDownCounter,
        ObservableGauge,
    )
    return dict.fromkeys(classes, stream)


def reader_options(limit: int) -> dict[str, Any]:
    """Keyword arguments for a ``MetricReader`` otel_django builds, applying ``limit`` to its
    streams. An SDK whose readers take no ``cardinality_limits`` (before 1.45.2) gets the
    same rule for every stream of the process instead (``_compat``)."""
    if "cardinality_limits" in inspect.signature(MetricReader.__init__).parameters:
        return {"cardinality_limits": sdk_limits(limit)}
    _compat.backport_cardinality_limit(sdk_stream_limit(limit), OVERFLOW_ATTRIBUTES)
    return {}


def series_key(key: K, held: Collection[K], limit: int, overflow: K) -> K:
    """``key`` if it has (or may have) a series of its own among ``held``, else ``overflow``."""
    if key == overflow or key in held or len(held) < sdk_stream_limit(limit):
        return key
    return overflow
