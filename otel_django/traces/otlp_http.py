"""Upstream's OTLP/HTTP span exporter, with otel_django's faster protobuf encoding.

:class:`OTLPSpanExporter` is a drop-in subclass of
``opentelemetry.exporter.otlp.proto.http.trace_exporter.OTLPSpanExporter``: the same
constructor and arguments, and everything but the encoding is upstream's own code. It reads
every ``OTEL_EXPORTER_OTLP_[TRACES_]*`` variable itself (endpoint, headers, timeout,
compression, certificates, credential provider), keeps its size limit, compression, retries
and exporter metrics. Only ``export()`` differs: spans are encoded by
:class:`~otel_django.traces.encoding.SpanEncoder` (the same message, decoded, as the SDK's
encoder gives; ``tests/traces/test_encoding.py``) and handed to the rest of upstream's export
steps (``_compat.send``).

A batch the direct encoder does not handle, or an installed exporter whose internals differ
from the versions checked (``_compat.TRACES_CHECKED``), goes through upstream's ``export()``
unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as UpstreamOTLPSpanExporter,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from .. import _compat
from .encoding import SpanEncoder

logger = logging.getLogger("otel_django.traces")


class OTLPSpanExporter(UpstreamOTLPSpanExporter):
    """``OTLPSpanExporter`` of ``opentelemetry-exporter-otlp-proto-http``, encoding faster."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._encoder = SpanEncoder()
        self._direct = _compat.exporter_send_path_available()

    @property
    def encodes_directly(self) -> bool:
        """Whether batches are encoded by otel_django's encoder (else by upstream's)."""
        return self._direct

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not self._direct:
            return super().export(spans)
        try:
            payload = self._encoder.encode(spans)
        except Exception:  # a shape the direct encoder does not expect: upstream's decides
            logger.debug(
                "direct OTLP encoding failed; upstream's encoder takes the batch", exc_info=True
            )
            payload = None
        if payload is None:
            return super().export(spans)
        if _compat.send(self, payload, len(spans)):
            return SpanExportResult.SUCCESS
        return SpanExportResult.FAILURE
