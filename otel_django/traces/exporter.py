"""Span export: the class behind ``otlp`` over HTTP, and the guard around every exporter.

The guard (``otel_django.export``) wraps whatever exporter the environment chose, so a
Collector that is away costs one warning and bounded retries, never a blocked request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ..export import OTLP_CLASSES, ExportGuard, Signal

# The class built for OTEL_TRACES_EXPORTER=otlp over http/protobuf (and otlp_proto_http), as
# ``module:attribute``: upstream's OTLPSpanExporter with a faster encoder (``otlp_http.py``),
# the same no-argument constructor reading the same variables. Imported only when spans are
# exported that way.
OTLP_HTTP_SPAN_EXPORTER = "otel_django.traces.otlp_http:OTLPSpanExporter"

SPAN_EXPORTER_CLASSES: Mapping[tuple[Signal, str], str] = {
    **OTLP_CLASSES,
    ("traces", "otlp_proto_http"): OTLP_HTTP_SPAN_EXPORTER,
}


class GuardedSpanExporter(SpanExporter):
    """Any span exporter, behind the guard."""

    def __init__(self, exporter: SpanExporter) -> None:
        self.exporter = exporter
        self._guard = ExportGuard("span", "spans", exporter, "The application is not affected.")

    @property
    def endpoint(self) -> str:
        return self._guard.endpoint

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        sent = self._guard.export(
            spans, lambda batch: self.exporter.export(batch) is SpanExportResult.SUCCESS
        )
        return SpanExportResult.SUCCESS if sent else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)
