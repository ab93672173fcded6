"""A span printer for development: one indented tree per request, with durations.

Children end before their parent, so spans are held per trace until the trace's local root
(a span with no parent, or a remote parent) ends; then the tree is printed to stderr.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TextIO

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

MAX_PENDING_TRACES = 1000
_SHOWN_ATTRIBUTES = (
    "http.route",
    "http.response.status_code",
    "db.system.name",
    "db.query.text",
    "otel_django.db.slow",
    "otel_django.request_id",
    "error.type",
)


class ConsoleTreeExporter(SpanExporter):
    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out
        self._lock = threading.Lock()
        self._pending: OrderedDict[int, list[ReadableSpan]] = OrderedDict()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        complete: list[list[ReadableSpan]] = []
        with self._lock:
            for span in spans:
                ctx = span.context
                if ctx is None:
                    continue
                bucket = self._pending.setdefault(ctx.trace_id, [])
                bucket.append(span)
                if span.parent is None or span.parent.is_remote:
                    complete.append(self._pending.pop(ctx.trace_id))
            while len(self._pending) > MAX_PENDING_TRACES:
                self._pending.popitem(last=False)
        for trace_spans in complete:
            self._write(render_tree(trace_spans))
        return SpanExportResult.SUCCESS

    def _write(self, text: str) -> None:
        out = self._out or sys.stderr
        out.write(text)
        out.flush()

    def shutdown(self) -> None:
        with self._lock:
            leftovers = list(self._pending.values())
            self._pending.clear()
        for trace_spans in leftovers:
            self._write(render_tree(trace_spans))


def render_tree(spans: Sequence[ReadableSpan]) -> str:
    by_parent: dict[int | None, list[ReadableSpan]] = {}
    ids = {s.context.span_id for s in spans if s.context is not None}
    for span in spans:
        parent_id = span.parent.span_id if span.parent is not None else None
        by_parent.setdefault(parent_id if parent_id in ids else None, []).append(span)
    for children in by_parent.values():
        children.sort(key=lambda s: s.start_time or 0)
    lines: list[str] = []

    def walk(span: ReadableSpan, depth: int) -> None:
        duration_ms = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
        kind = "" if span.kind is SpanKind.INTERNAL else f" [{span.kind.name.lower()}]"
        error = " ERROR" if span.status.status_code is StatusCode.ERROR else ""
        details = " ".join(
            f"{key}={span.attributes[key]!r}"
            for key in _SHOWN_ATTRIBUTES
            if span.attributes and key in span.attributes
        )
        lines.append(
            f"{'  ' * depth}{span.name}{kind} {duration_ms:.2f} ms{error}  {details}".rstrip()
        )
        for event in span.events:
            lines.append(f"{'  ' * (depth + 1)}* {event.name} {dict(event.attributes or {})}")
        if span.context is not None:
            for child in by_parent.get(span.context.span_id, []):
                walk(child, depth + 1)

    roots = by_parent.get(None, [])
    if roots and roots[0].context is not None:
        lines.insert(0, f"trace {roots[0].context.trace_id:032x}")
    for root in roots:
        walk(root, 1)
    return "\n".join(lines) + "\n"
