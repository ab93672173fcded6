"""Finding spans: the finished spans of this process (the ``spans`` fixture) and the spans an
:class:`~tests.support.otlp_receiver.OTLPReceiver` decoded."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.support.otlp_receiver import OTLPReceiver, ReceivedSpan

__all__ = ["children_of", "events", "query_spans", "server_span", "server_spans"]

Spans = InMemorySpanExporter | Sequence[ReadableSpan]


def _finished(spans: Spans) -> Sequence[ReadableSpan]:
    return spans.get_finished_spans() if isinstance(spans, InMemorySpanExporter) else spans


def server_span(spans: Spans) -> ReadableSpan:
    """The one SERVER span; fails when there are none or several."""
    finished = _finished(spans)
    servers = [s for s in finished if s.kind is SpanKind.SERVER]
    assert len(servers) == 1, [s.name for s in finished]
    return servers[0]


def query_spans(spans: Spans) -> list[ReadableSpan]:
    """The CLIENT spans (queries and commands), in the order they ended."""
    return [s for s in _finished(spans) if s.kind is SpanKind.CLIENT]


def children_of(parent: ReadableSpan, spans: Spans) -> list[ReadableSpan]:
    assert parent.context is not None
    return [
        s
        for s in _finished(spans)
        if s.parent is not None and s.parent.span_id == parent.context.span_id
    ]


def events(span: ReadableSpan, name: str) -> list[dict[str, Any]]:
    """The attributes of each event called ``name`` on ``span``."""
    return [dict(e.attributes or {}) for e in span.events if e.name == name]


def server_spans(receiver: OTLPReceiver) -> list[ReceivedSpan]:
    """The SERVER spans the receiver has decoded so far."""
    return receiver.spans_of_kind("SERVER")
