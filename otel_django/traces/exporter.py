"""OTLP/HTTP span export, guarded against a Collector that is away (see ``otel_django.export``)."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ..export import ExportGuard
from .otlp_http import OTLPSpanExporter


class GuardedOTLPSpanExporter(SpanExporter):
    def __init__(self, endpoint: str, timeout_s: float = 5.0) -> None:
        self.endpoint = endpoint.rstrip("/") + "/v1/traces"
        self._exporter = OTLPSpanExporter(endpoint=self.endpoint, timeout=timeout_s)
        self._guard = ExportGuard(
            "span", "spans", self.endpoint,
            sdk_logger="opentelemetry.exporter.otlp.proto.http.trace_exporter",
            unaffected="The application is not affected.",
        )  # fmt: skip

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        sent = self._guard.export(
            spans, lambda batch: self._exporter.export(batch) is SpanExportResult.SUCCESS
        )
        return SpanExportResult.SUCCESS if sent else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self._exporter.shutdown()  # type: ignore[no-untyped-call]

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._exporter.force_flush(timeout_millis)
