"""The hot-path shortcuts the benchmarks led to keep what is recorded unchanged."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from opentelemetry import context, trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

pytestmark = pytest.mark.django_db


def _query() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _db_spans(spans: InMemorySpanExporter) -> list[str]:
    return [s.name for s in spans.get_finished_spans() if s.kind is trace.SpanKind.CLIENT]


def test_a_query_in_an_unsampled_request_makes_no_span(spans: InMemorySpanExporter) -> None:
    unsampled = SpanContext(0x1234, 0x5678, is_remote=False, trace_flags=TraceFlags(0))
    token = context.attach(trace.set_span_in_context(NonRecordingSpan(unsampled)))
    try:
        _query()
    finally:
        context.detach(token)

    assert _db_spans(spans) == []


def test_a_query_in_a_sampled_request_still_makes_its_span(spans: InMemorySpanExporter) -> None:
    with trace.get_tracer("test").start_as_current_span("request"):
        _query()

    assert _db_spans(spans) == ["SELECT"]


def test_server_span_keeps_every_attribute_set_at_start_and_finish(
    spans: InMemorySpanExporter,
) -> None:
    response = Client().get(
        "/products/1/?page=2", HTTP_USER_AGENT="pytest", HTTP_X_REQUEST_ID="req-1"
    )

    (server,) = [s for s in spans.get_finished_spans() if s.kind is trace.SpanKind.SERVER]
    attributes = dict(server.attributes or {})
    assert server.name == "GET products/<int:pk>/"
    assert attributes["http.request.method"] == "GET"
    assert attributes["url.scheme"] == "http"
    assert attributes["url.path"] == "/products/1/"
    assert attributes["url.query"] == "page=2"
    assert attributes["user_agent.original"] == "pytest"
    assert attributes["network.protocol.version"] == "1.1"
    assert attributes["otel_django.request_id"] == "req-1"
    assert attributes["http.route"] == "products/<int:pk>/"
    assert attributes["http.response.status_code"] == response.status_code == 404
    assert attributes["http.response.body.size"] == len(response.content)
