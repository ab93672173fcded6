"""The per-request database summary, through the real middleware on PostgreSQL.

Proves: a request that runs 12 queries (ORM and raw cursors) shows 12 on its server span
(``otel_django.db.query_count``, with ``otel_django.db.query_duration_ms`` no more than the
query spans took) and on its access-log line, and ``otel_django.db.queries_per_request``
counts it in the bucket of 12 under its route, with the server span as that bucket's
exemplar; failed queries count; a request without queries shows 0; an unsampled request has
no span to annotate but still has its line and its histogram point, and no exemplar; an eager
Celery task's queries count towards the request that ran it.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otel_django.db import insight
from tests.support.metrics import samples, scrape

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(databases=["default", "postgres"]),
    pytest.mark.urls("tests.db.urls"),
]

ROUTE = "db/queries/<int:count>/"
FAMILY = "otel_django_db_queries_per_request"
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def histogram(text: str) -> dict[str, float]:
    """The route's GET series: ``{"le=20.0": cumulative count, "count": n, "sum": s}``."""
    found: dict[str, float] = {}
    for name, labels, value in samples(text):
        if labels.get("http_route") != ROUTE or labels.get("http_request_method") != "GET":
            continue
        if name == FAMILY + "_bucket":
            found["le=" + labels["le"]] = value
        elif name in (FAMILY + "_count", FAMILY + "_sum"):
            found[name.rsplit("_", 1)[1]] = value
    return found


def difference(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {key: after[key] - before.get(key, 0.0) for key in after}


def spans_of(spans: InMemorySpanExporter, kind: SpanKind) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.kind is kind]


def access_line(logs: list[dict[str, Any]]) -> dict[str, Any]:
    [line] = [e for e in logs if e.get("http.route") == ROUTE and e["event"] == "request"]
    return line


def test_a_request_with_12_queries_shows_12_everywhere(
    spans: InMemorySpanExporter, logs: list[dict[str, Any]]
) -> None:
    client = Client()
    before = histogram(scrape(client))

    assert client.get("/db/queries/12/").status_code == 200

    [server] = spans_of(spans, SpanKind.SERVER)
    queries = spans_of(spans, SpanKind.CLIENT)
    assert len(queries) == 12
    attributes = dict(server.attributes or {})
    assert attributes["otel_django.db.query_count"] == 12
    spent_ms = attributes["otel_django.db.query_duration_ms"]
    spans_ms = sum((s.end_time or 0) - (s.start_time or 0) for s in queries) / 1e6
    assert 0 < spent_ms <= spans_ms + 0.012  # each query timed inside its span (rounding)
    line = access_line(logs)
    assert line["otel_django.db.query_count"] == 12
    assert line["otel_django.db.query_duration_ms"] == spent_ms

    body = scrape(client, HTTP_ACCEPT=OPENMETRICS)
    grew = difference(before, histogram(body))
    assert grew["count"] == 1 and grew["sum"] == 12
    assert grew["le=10.0"] == 0 and grew["le=20.0"] == 1 and grew["le=+Inf"] == 1
    trace_id = f"{server.context.trace_id:032x}"
    [bucket] = [line for line in body.splitlines() if line.startswith(FAMILY) and trace_id in line]
    assert 'le="20.0"' in bucket
    assert re.search(rf'span_id="{server.context.span_id:016x}"\}} 12 ', bucket), bucket


def test_failed_queries_count_and_no_queries_is_zero(
    spans: InMemorySpanExporter, logs: list[dict[str, Any]]
) -> None:
    client = Client()
    assert client.get("/db/queries/5/?fail=1").status_code == 200
    [server] = spans_of(spans, SpanKind.SERVER)
    assert dict(server.attributes or {})["otel_django.db.query_count"] == 5
    assert [s.status.status_code.name for s in spans_of(spans, SpanKind.CLIENT)].count("ERROR") == 1
    assert access_line(logs)["otel_django.db.query_count"] == 5

    spans.clear()
    logs.clear()
    before = histogram(scrape(client))
    assert client.get("/db/queries/0/").status_code == 200
    [server] = spans_of(spans, SpanKind.SERVER)
    assert dict(server.attributes or {})["otel_django.db.query_count"] == 0
    assert dict(server.attributes or {})["otel_django.db.query_duration_ms"] == 0
    assert access_line(logs)["otel_django.db.query_count"] == 0
    assert difference(before, histogram(scrape(client)))["le=0.0"] == 1


def test_an_unsampled_request_still_has_its_line_and_histogram_point(
    spans: InMemorySpanExporter, logs: list[dict[str, Any]]
) -> None:
    client = Client()
    before = histogram(scrape(client))
    trace_id = "7bf92f3577b34da6a3ce929d0e0e4736"
    response = client.get("/db/queries/3/", HTTP_TRACEPARENT=f"00-{trace_id}-00f067aa0ba902b7-00")
    assert response.status_code == 200
    assert not spans.get_finished_spans()
    assert access_line(logs)["otel_django.db.query_count"] == 3
    body = scrape(client, HTTP_ACCEPT=OPENMETRICS)
    assert difference(before, histogram(body))["le=3.0"] == 1
    assert trace_id not in body


def test_an_eager_tasks_queries_count_towards_its_caller() -> None:
    celery = pytest.importorskip("celery")
    app = celery.Celery("otel-django-summary", set_as_current=False)
    app.conf.task_always_eager = True

    @app.task
    def run_queries(n: int) -> int:
        from django.db import connections

        for _ in range(n):
            with connections["postgres"].cursor() as cursor:
                cursor.execute("SELECT 1")
        return n

    token = insight.begin_request(None)
    try:
        assert run_queries.delay(4).get() == 4
        assert run_queries.delay(3).get() == 3
        scope = insight.current_scope()
        assert scope is not None and scope.queries == 7
    finally:
        closed = insight.end_request(token)
    assert closed is not None and closed.queries == 7 and closed.query_duration_s > 0
