"""OTLP/HTTP span export that degrades quietly when the Collector is away.

The SDK exporter retries with backoff for up to its timeout and logs every failure; with no
Collector listening that means a warning per batch and a batch thread stuck in retries. This
wrapper logs one warning when export starts failing and one line when it recovers, and, while
the endpoint is down, tries it at most once every few seconds, dropping those spans: the queue
stays bounded and requests never wait on export.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

logger = logging.getLogger("otel_django.export")

RETRY_AFTER_S = 5.0


class GuardedOTLPSpanExporter(SpanExporter):
    def __init__(self, endpoint: str, timeout_s: float = 5.0) -> None:
        self.endpoint = endpoint.rstrip("/") + "/v1/traces"
        self._exporter = OTLPSpanExporter(endpoint=self.endpoint, timeout=timeout_s)
        self._lock = threading.Lock()
        self._failing_since: float | None = None
        self._next_attempt = 0.0
        self.dropped_spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        now = time.monotonic()
        if self._failing_since is not None and now < self._next_attempt:
            self.dropped_spans += len(spans)
            return SpanExportResult.FAILURE
        export_logger = logging.getLogger("opentelemetry.exporter.otlp.proto.http.trace_exporter")
        previous_level = export_logger.level
        export_logger.setLevel(logging.CRITICAL)  # one warning of ours instead of one per batch
        try:
            result = self._exporter.export(spans)
        except Exception:
            result = SpanExportResult.FAILURE
        finally:
            export_logger.setLevel(previous_level)
        with self._lock:
            if result is SpanExportResult.SUCCESS:
                if self._failing_since is not None:
                    logger.warning("span export to %s works again", self.endpoint)
                self._failing_since = None
            else:
                self.dropped_spans += len(spans)
                if self._failing_since is None:
                    self._failing_since = now
                    logger.warning(
                        "span export to %s failed; spans are dropped until it answers "
                        "(retrying every %.0f s). The application is not affected.",
                        self.endpoint,
                        RETRY_AFTER_S,
                    )
                self._next_attempt = time.monotonic() + RETRY_AFTER_S
        return result

    def shutdown(self) -> None:
        self._exporter.shutdown()  # type: ignore[no-untyped-call]

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._exporter.force_flush(timeout_millis)
