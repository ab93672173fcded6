"""otel_django's server and query spans keep the SDK's contract, whatever its fast paths.

The middleware and the query observer run against a TracerProvider built here, with a
sampler, span limits and processors of the test's choosing: samplers see the attributes at
start and decide, limits apply, every processor gets the span at start and a ReadableSpan at
end, and ``trace.get_current_span()`` in the view is the server span.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from django.db import connection, connections
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes

from otel_django import runtime
from otel_django.db.django import QueryObserver
from otel_django.middleware import OtelDjangoMiddleware

pytestmark = pytest.mark.django_db


class RecordingSampler(Sampler):
    """Keeps what it was asked; drops /health, records /record-only without sampling."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, SpanKind | None, dict[str, Any]]] = []

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        attributes = dict(attributes or {})
        self.seen.append((name, kind, attributes))
        path = str(attributes.get("url.path", ""))
        if path.startswith("/health"):
            return SamplingResult(Decision.DROP)
        decision = Decision.RECORD_ONLY if path == "/record-only/" else Decision.RECORD_AND_SAMPLE
        return SamplingResult(decision, {**attributes, "sampler.added": "yes"})

    def get_description(self) -> str:
        return "RecordingSampler"


class Processor(SpanProcessor):
    def __init__(self) -> None:
        self.started: list[Span] = []
        self.ended: list[ReadableSpan] = []

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.started.append(span)

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span)


class Stack:
    def __init__(self, sampler: Sampler, limits: SpanLimits | None = None) -> None:
        self.provider = TracerProvider(sampler=sampler, span_limits=limits)
        self.exported = InMemorySpanExporter()
        self.first, self.second = Processor(), Processor()
        self.provider.add_span_processor(self.first)
        self.provider.add_span_processor(SimpleSpanProcessor(self.exported))
        self.provider.add_span_processor(self.second)
        self.current: list[trace.Span] = []

    def view(self, request: HttpRequest) -> HttpResponse:
        self.current.append(trace.get_current_span())
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return HttpResponse(b"ok")

    def get(self, path: str) -> HttpResponse:
        middleware = OtelDjangoMiddleware(self.view, tracer_provider=self.provider)
        response: HttpResponse = middleware(RequestFactory().get(path, HTTP_USER_AGENT="t"))
        return response


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """The middleware and the query observer, tracing with a provider built per test."""

    def build(sampler: Sampler, limits: SpanLimits | None = None) -> Stack:
        built = Stack(sampler, limits)
        live = runtime.current()
        assert live.observer is not None
        # This test's observer in place of the live one on the connection the view queries.
        query_observer = QueryObserver(
            live.config,
            live.insight,
            live.redactor,
            tracer_provider=built.provider,
            pipeline_source=live,
        )
        connection.ensure_connection()
        wrappers = [
            query_observer if w is live.observer else w for w in connection.execute_wrappers
        ]
        monkeypatch.setattr(connections["default"], "execute_wrappers", wrappers)
        monkeypatch.setattr(trace, "get_tracer_provider", lambda: built.provider)
        return built

    yield build  # type: ignore[misc]


def _by_kind(spans: Sequence[ReadableSpan], kind: SpanKind) -> list[ReadableSpan]:
    return [s for s in spans if s.kind is kind]


def test_the_sampler_sees_the_request_attributes_and_its_decision_holds(stack: Any) -> None:
    sampler = RecordingSampler()
    built: Stack = stack(ParentBased(sampler))

    assert built.get("/health/").status_code == 200
    assert built.get("/products/1/?x=1").status_code == 200

    name, kind, attributes = sampler.seen[0]
    assert kind is SpanKind.SERVER and name == "GET"
    assert attributes["url.path"] == "/health/"
    assert attributes["http.request.method"] == "GET"
    exported = built.exported.get_finished_spans()
    (server,) = _by_kind(exported, SpanKind.SERVER)
    assert server.attributes is not None
    assert server.attributes["url.path"] == "/products/1/"
    assert server.attributes["sampler.added"] == "yes"  # what the sampler returned is kept
    (query,) = _by_kind(exported, SpanKind.CLIENT)
    assert query.parent is not None and server.context is not None
    assert query.parent.span_id == server.context.span_id
    # The dropped request made no span at all, not even a query span.
    assert all(s.attributes and s.attributes.get("url.path") != "/health/" for s in exported)


def test_a_record_only_decision_records_without_exporting(stack: Any) -> None:
    built: Stack = stack(ParentBased(RecordingSampler()))

    built.get("/record-only/")

    assert built.exported.get_finished_spans() == ()
    (server,) = _by_kind(built.first.ended, SpanKind.SERVER)
    assert server.attributes is not None
    assert server.attributes["url.path"] == "/record-only/"
    assert not server.context.trace_flags.sampled  # type: ignore[union-attr]


def test_every_processor_gets_each_span_at_start_and_a_readable_span_at_end(stack: Any) -> None:
    built: Stack = stack(ALWAYS_ON)

    built.get("/products/1/")

    for processor in (built.first, built.second):
        assert [s.kind for s in processor.started] == [SpanKind.SERVER, SpanKind.CLIENT]
        assert {s.kind for s in processor.ended} == {SpanKind.SERVER, SpanKind.CLIENT}
        assert all(isinstance(s, ReadableSpan) and s.end_time for s in processor.ended)
    first = {s.kind: dict(s.attributes or {}) for s in built.first.ended}
    second = {s.kind: dict(s.attributes or {}) for s in built.second.ended}
    exported = {s.kind: dict(s.attributes or {}) for s in built.exported.get_finished_spans()}
    assert first == second == exported
    assert first[SpanKind.SERVER]["http.response.status_code"] == 200
    assert first[SpanKind.CLIENT]["db.query.text"] == "SELECT ?"


def test_the_current_span_in_the_view_is_the_server_span(stack: Any) -> None:
    built: Stack = stack(ALWAYS_ON)

    built.get("/products/1/")

    (current,) = built.current
    (server,) = _by_kind(built.exported.get_finished_spans(), SpanKind.SERVER)
    assert isinstance(current, Span)
    assert current.get_span_context() == server.context
    assert built.first.started[0] is current


def test_span_limits_apply_to_server_and_query_spans(stack: Any) -> None:
    limits = SpanLimits(max_span_attributes=3, max_span_attribute_length=4)
    built: Stack = stack(ALWAYS_ON, limits)

    built.get("/products/1/")

    spans = built.exported.get_finished_spans()
    assert {s.kind for s in spans} == {SpanKind.SERVER, SpanKind.CLIENT}
    for span in spans:
        attributes = dict(span.attributes or {})
        assert len(attributes) == 3
        assert span.dropped_attributes > 0
        assert all(len(v) <= 4 for v in attributes.values() if isinstance(v, str))
