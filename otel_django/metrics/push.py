"""Pushed metrics (``OTEL_METRICS_EXPORTER=otlp`` ...): the SDK's, plus the in-place histograms.

The request and query histograms are aggregated in place (``aggregate.py``), off the SDK's
per-measurement path, so the SDK's readers do not see them. The Python SDK (1.45) has no
``MetricProducer`` to plug them into a reader, so :class:`PushExporter` adds them at the
exporter boundary: it is the ``MetricExporter`` a ``PeriodicExportingMetricReader`` calls,
and on each export it appends the histograms, with their OTel names, units, descriptions,
bounds and attributes, to the SDK's ``MetricsData`` before the real exporter sends it. So
one push carries every metric the metrics view shows, under this process's resource
(``service.instance.id``). The real exporter sits behind the export guard.

Temporality follows the exporter's preference (``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_
PREFERENCE``): cumulative, or the difference since the previous export for delta.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.metrics import Histogram as HistogramInstrument
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from .. import __version__, _compat
from ..export import ExportGuard
from .pipeline import Pipeline

SCOPE = InstrumentationScope("otel_django", __version__)

_SeriesKey = tuple[str, tuple[tuple[str, Any], ...]]


class PushExporter(MetricExporter):
    """Adds the in-place histograms to each export; the real exporter behind the guard."""

    def __init__(
        self,
        exporter: MetricExporter,
        pipeline: Callable[[], Pipeline | None],
        resource: Resource,
    ) -> None:
        temporality, aggregation = _compat.exporter_preferences(exporter)
        super().__init__(preferred_temporality=temporality, preferred_aggregation=aggregation)
        self.exporter = exporter
        self._pipeline = pipeline
        self._resource = resource
        self._delta = (temporality or {}).get(HistogramInstrument) is AggregationTemporality.DELTA
        self._start_ns = time.time_ns()
        self._previous: dict[_SeriesKey, tuple[int, float, list[int]]] = {}
        self._lock = threading.Lock()
        self._guard = ExportGuard("metric", "metrics", exporter, "The application is not affected.")

    @property
    def endpoint(self) -> str:
        return self._guard.endpoint

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        data = self.with_histograms(metrics_data)
        sent = self._guard.export(
            data,
            lambda batch: (
                self.exporter.export(batch, timeout_millis=timeout_millis)
                is MetricExportResult.SUCCESS
            ),
        )
        return MetricExportResult.SUCCESS if sent else MetricExportResult.FAILURE

    def with_histograms(self, metrics_data: MetricsData) -> MetricsData:
        pipeline = self._pipeline()
        metrics = self._histograms(pipeline) if pipeline is not None else []
        if not metrics:
            return metrics_data
        resource_metrics = list(metrics_data.resource_metrics)
        if not resource_metrics:
            resource_metrics = [ResourceMetrics(self._resource, [], self._resource.schema_url)]
        first = resource_metrics[0]
        scopes = list(first.scope_metrics)
        for index, scope_metrics in enumerate(scopes):
            if scope_metrics.scope.name == SCOPE.name:
                scopes[index] = ScopeMetrics(
                    scope_metrics.scope,
                    [*scope_metrics.metrics, *metrics],
                    scope_metrics.schema_url,
                )
                break
        else:
            scopes.append(ScopeMetrics(SCOPE, metrics, ""))
        resource_metrics[0] = ResourceMetrics(first.resource, scopes, first.schema_url)
        return MetricsData(resource_metrics)

    def _histograms(self, pipeline: Pipeline) -> list[Metric]:
        now = time.time_ns()
        temporality = (
            AggregationTemporality.DELTA if self._delta else AggregationTemporality.CUMULATIVE
        )
        metrics: list[Metric] = []
        with self._lock:
            start, self._start_ns = self._start_ns, (now if self._delta else self._start_ns)
            for aggregate in pipeline.aggregates():
                spec = aggregate.spec
                points = []
                for attributes, count, total, buckets in aggregate.points():
                    if self._delta:
                        key = (spec.name, tuple(sorted(attributes.items())))
                        before = self._previous.get(key)
                        self._previous[key] = (count, total, buckets)
                        if before is not None:
                            count, total = count - before[0], total - before[1]
                            buckets = [a - b for a, b in zip(buckets, before[2], strict=True)]
                    points.append(
                        HistogramDataPoint(
                            attributes=attributes,
                            start_time_unix_nano=start,
                            time_unix_nano=now,
                            count=count,
                            sum=total,
                            bucket_counts=buckets,
                            explicit_bounds=list(spec.bounds),
                            min=None,  # type: ignore[arg-type]  # not tracked: left unset
                            max=None,  # type: ignore[arg-type]
                        )
                    )
                if points:
                    metrics.append(
                        Metric(
                            name=spec.name,
                            description=spec.description,
                            unit=spec.unit,
                            data=Histogram(data_points=points, aggregation_temporality=temporality),
                        )
                    )
        return metrics

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.exporter.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.exporter.shutdown(timeout_millis=timeout_millis, **kwargs)
