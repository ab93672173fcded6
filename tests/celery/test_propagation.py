"""Celery (tested only when installed): the request id and trace context travel into tasks run by
a real worker (in-memory broker, worker thread), and task lines carry them."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_django import runtime
from otel_django.logging.output import PipelineHandler
from otel_django.logging.setup import configure_logging
from tests.support.lines import Lines

celery = pytest.importorskip("celery")
from celery.contrib.testing.worker import start_worker  # noqa: E402

pytestmark = pytest.mark.slow

app = celery.Celery(
    "otel-django-log-tests", broker="memory://", backend="cache+memory://", set_as_current=False
)
app.conf.update(
    task_always_eager=False,
    broker_connection_retry_on_startup=True,
    broker_transport_options={"polling_interval": 0.05},
)


@app.task(name="tests.celery.report")
def report(n: int) -> dict[str, Any]:
    structlog.get_logger("tests.tasks").info("task running", n=n)
    logging.getLogger("tests.tasks").warning("task stdlib line")
    context = trace.get_current_span().get_span_context()
    return {
        "request_id": structlog.contextvars.get_contextvars().get("request_id"),
        "trace_id": format(context.trace_id, "032x"),
    }


TABLE_CANARY = "no_such_table_celery_canary_58c1"  # in the driver's message only


@app.task(name="tests.celery.failing_query")
def failing_query() -> None:
    sqlite3.connect(":memory:").execute(f"SELECT * FROM {TABLE_CANARY}")


@pytest.fixture(scope="module")
def worker() -> Iterator[None]:
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=5):
        yield
    # Celery's Django fixup ran django.setup() again in this process, and with it Django's
    # default LOGGING: a real worker runs it once, before otel_django's own setup.
    configure_logging(runtime.current().config)


def test_a_task_continues_the_callers_trace_and_request_id(
    worker: None, lines: Lines, spans: InMemorySpanExporter
) -> None:
    tokens = structlog.contextvars.bind_contextvars(request_id="celery-req-1")
    try:
        with trace.get_tracer("tests").start_as_current_span("GET /checkout/") as caller:
            result = report.delay(7).get(timeout=10)
    finally:
        structlog.contextvars.reset_contextvars(**tokens)
    trace_id = format(caller.get_span_context().trace_id, "032x")
    assert result == {"request_id": "celery-req-1", "trace_id": trace_id}

    task_lines = [line for line in lines() if line.get("logger") == "tests.tasks"]
    assert [line["event"] for line in task_lines] == ["task running", "task stdlib line"]
    for line in task_lines:
        assert line["request_id"] == "celery-req-1"
        assert line["trace_id"] == trace_id
        assert line["task_name"] == "tests.celery.report" and line["task_id"]
    (consumer,) = [s for s in spans.get_finished_spans() if s.name == "process tests.celery.report"]
    assert consumer.kind.name == "CONSUMER"
    assert consumer.parent is not None
    assert consumer.parent.span_id == caller.get_span_context().span_id
    assert consumer.attributes is not None
    assert consumer.attributes["otel_django.request_id"] == "celery-req-1"
    assert consumer.attributes["messaging.system"] == "celery"


@app.task(name="tests.celery.run_queries")
def run_queries(n: int) -> int:
    from django.db import connection

    for number in range(n):
        with connection.cursor() as cursor:
            cursor.execute("SELECT %s", [number])
    return n


@pytest.mark.django_db
def test_a_tasks_span_carries_its_query_count_and_duration(
    worker: None, spans: InMemorySpanExporter
) -> None:
    assert run_queries.delay(12).get(timeout=10) == 12
    (consumer,) = [
        s for s in spans.get_finished_spans() if s.name == "process tests.celery.run_queries"
    ]
    queries = [s for s in spans.get_finished_spans() if s.parent and s.kind.name == "CLIENT"]
    assert consumer.attributes is not None
    assert consumer.attributes["otel_django.db.query_count"] == 12
    spent_ms = consumer.attributes["otel_django.db.query_duration_ms"]
    assert isinstance(spent_ms, float) and spent_ms > 0
    assert len([s for s in queries if s.parent.span_id == consumer.context.span_id]) == 12


def test_a_task_sent_outside_a_request_has_no_request_id(worker: None, lines: Lines) -> None:
    assert report.delay(1).get(timeout=10)["request_id"] is None
    task_lines = [line for line in lines() if line.get("logger") == "tests.tasks"]
    assert task_lines and all("request_id" not in line for line in task_lines)


def test_the_worker_left_logging_alone() -> None:
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, PipelineHandler)]
    assert len(handlers) == 1


def test_an_eager_task_runs_in_the_callers_context(lines: Lines) -> None:
    app.conf.task_always_eager = True
    tokens = structlog.contextvars.bind_contextvars(request_id="celery-eager-1")
    try:
        with trace.get_tracer("tests").start_as_current_span("GET /eager/") as caller:
            result = report.delay(2).get()
    finally:
        structlog.contextvars.reset_contextvars(**tokens)
        app.conf.task_always_eager = False
    assert result["request_id"] == "celery-eager-1"
    assert result["trace_id"] == format(caller.get_span_context().trace_id, "032x")
    assert structlog.contextvars.get_contextvars().get("task_id") is None  # reset after the run


def test_a_failing_task_records_no_database_error_message(
    worker: None, lines: Lines, spans: InMemorySpanExporter
) -> None:
    result = failing_query.delay()
    with pytest.raises(sqlite3.OperationalError):
        result.get(timeout=10)
    (consumer,) = [
        s for s in spans.get_finished_spans() if s.name == "process tests.celery.failing_query"
    ]
    # error.type is the fully qualified class name, as on server and database spans.
    assert consumer.attributes is not None
    assert consumer.attributes["error.type"] == "sqlite3.OperationalError"
    (event,) = consumer.events
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "sqlite3.OperationalError"
    assert event.attributes["exception.message"] == "(message withheld)"
    assert "in failing_query" in str(event.attributes["exception.stacktrace"])
    assert TABLE_CANARY not in str(event.attributes)
    printed = lines()
    failures = [line for line in printed if line.get("exception")]
    assert failures and failures[0]["exception"][0]["exc_value"] == "(message withheld)"
    assert TABLE_CANARY not in str(printed)
