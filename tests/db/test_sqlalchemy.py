"""SQLAlchemy engines: upstream's spans get safe text, summaries and the same query insight."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_django import runtime
from otel_django.config import Config
from otel_django.db import insight
from tests.support.services import PG_HOST, PG_PORT
from tests.support.spans import events

CANARY = "sa-canary-0xC0FFEE"
UPSTREAM = "opentelemetry.instrumentation.sqlalchemy"


def statement_spans(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    return [
        s
        for s in spans.get_finished_spans()
        if s.instrumentation_scope is not None
        and s.instrumentation_scope.name == UPSTREAM
        and s.name != "connect"
    ]


@pytest.fixture
def engine() -> Iterator[sqlalchemy.Engine]:
    engine = sqlalchemy.create_engine("sqlite://")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, owner INT)")
        for n in range(6):
            conn.execute(
                sqlalchemy.text("INSERT INTO item VALUES (:id, :name, 1)"),
                {"id": n, "name": f"n{n}"},
            )
    yield engine
    engine.dispose()


@pytest.fixture
def end_warnings(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    caplog.set_level(logging.WARNING, logger="opentelemetry.sdk.trace")
    found: list[str] = []
    yield found
    found += [r.getMessage() for r in caplog.records if "ended span" in r.getMessage()]
    assert not found, found


@pytest.mark.smoke
def test_upstream_spans_get_sanitized_text_and_the_summary_as_name(
    engine: sqlalchemy.Engine, spans: InMemorySpanExporter, end_warnings: list[str]
) -> None:
    spans.clear()
    with engine.connect() as conn:
        conn.exec_driver_sql(f"SELECT id FROM item WHERE name = '{CANARY}' OR owner = 4111")
        conn.execute(sqlalchemy.text("SELECT name FROM item WHERE id = :id"), {"id": 3})

    literal, bound = statement_spans(spans)
    assert literal.name == "SELECT item"
    assert literal.attributes["db.query.text"] == "SELECT id FROM item WHERE name = ? OR owner = ?"
    assert literal.attributes.get("db.statement", "") in ("", literal.attributes["db.query.text"])
    assert literal.attributes["db.query.summary"] == "SELECT item"
    assert literal.attributes["db.operation.name"] == "SELECT"
    assert literal.attributes["db.collection.name"] == "item"
    assert literal.attributes["db.system.name"] == "sqlite"
    assert bound.attributes["db.query.text"] == "SELECT name FROM item WHERE id = ?"
    assert CANARY not in str([dict(s.attributes) for s in spans.get_finished_spans()])


def test_n_plus_one_through_sqlalchemy_is_reported_once_per_scope(
    engine: sqlalchemy.Engine,
    spans: InMemorySpanExporter,
    override_config: Callable[..., Config],
    logs: list[dict[str, Any]],
) -> None:
    override_config(n_plus_one_threshold=5)
    with trace.get_tracer("test").start_as_current_span("request") as span:
        token = insight.begin_request(span, runtime.current().insight)
        with engine.connect() as conn:
            ids = [row.id for row in conn.execute(sqlalchemy.text("SELECT id FROM item"))]
            for item_id in ids:
                conn.execute(
                    sqlalchemy.text("SELECT name FROM item WHERE id = :id"), {"id": item_id}
                )
        insight.end_request(token)

    [request] = [s for s in spans.get_finished_spans() if s.name == "request"]
    [event] = events(request, "n_plus_one")
    assert event["otel_django.db.count"] == 6
    assert event["db.query.summary"] == "SELECT item"
    assert event["code.file.path"] == __file__
    assert [e["event"] for e in logs] == ["n_plus_one"]


def test_slow_statement_is_marked_and_its_span_ends_once_at_the_right_time(
    engine: sqlalchemy.Engine,
    spans: InMemorySpanExporter,
    override_config: Callable[..., Config],
    end_warnings: list[str],
) -> None:
    override_config(slow_query_ms=0, explain_enabled=True)
    spans.clear()
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text("SELECT name FROM item WHERE owner = :o"), {"o": 1}).all()

    [span] = statement_spans(spans)
    assert span.attributes["otel_django.db.slow"] is True
    assert span.attributes["code.file.path"] == __file__
    assert span.attributes["code.function.name"].endswith(
        "test_slow_statement_is_marked_and_its_span_ends_once_at_the_right_time"
    )
    assert str(span.attributes["otel_django.db.explain"]).startswith("SCAN item")


def test_failing_statement_keeps_its_type_and_loses_its_message(
    engine: sqlalchemy.Engine, spans: InMemorySpanExporter, end_warnings: list[str]
) -> None:
    spans.clear()
    with pytest.raises(sqlalchemy.exc.OperationalError), engine.connect() as conn:
        conn.exec_driver_sql(f"SELECT * FROM missing WHERE secret = '{CANARY}'")

    [span] = statement_spans(spans)
    assert span.status.status_code.name == "ERROR"
    assert CANARY not in (span.status.description or "")
    assert span.attributes["error.type"] == "sqlite3.OperationalError"
    assert span.attributes["db.query.text"] == "SELECT * FROM missing WHERE secret = ?"
    assert CANARY not in str(dict(span.attributes))


@pytest.mark.postgres
@pytest.mark.django_db(databases=["default", "postgres"])
def test_postgresql_engine_slow_query_gets_a_plan(
    spans: InMemorySpanExporter, override_config: Callable[..., Config], end_warnings: list[str]
) -> None:
    override_config(slow_query_ms=50, explain_enabled=True)
    name = os.environ.get("OTEL_DJANGO_TEST_DB", "test_otel_django")
    engine = sqlalchemy.create_engine(f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{name}")
    spans.clear()
    try:
        with engine.connect() as conn:
            conn.execute(
                sqlalchemy.text(
                    "SELECT pg_sleep(0.06), count(*) FROM shop_product WHERE name = :name"
                ),
                {"name": CANARY},
            )
    finally:
        engine.dispose()

    [span] = statement_spans(spans)
    assert span.name == "SELECT shop_product"
    assert span.attributes["db.query.text"] == (
        "SELECT pg_sleep(?), count(*) FROM shop_product WHERE name = %(name)s"
    )
    plan = str(span.attributes["otel_django.db.explain"])
    assert "Seq Scan on shop_product" in plan
    assert CANARY not in plan


def test_old_semantic_conventions_statement_is_sanitized_too(spans: InMemorySpanExporter) -> None:
    """Without OTEL_SEMCONV_STABILITY_OPT_IN=database upstream records ``db.statement``."""
    from otel_django import runtime
    from otel_django.db.sqlalchemy import _Hooks

    live = runtime.current()
    hooks = _Hooks(live.config, live.insight)

    class Dialect:
        name = "sqlite"

    class Connection:
        dialect = Dialect()

    class Context:
        pass

    statement = f"SELECT * FROM item WHERE name = '{CANARY}'"
    context = Context()
    context._otel_span = trace.get_tracer("test").start_span(  # type: ignore[attr-defined]
        "SELECT :memory:", attributes={"db.statement": statement, "db.system": "sqlite"}
    )
    hooks.before_cursor_execute(Connection(), None, statement, (), context, False)
    hooks.after_cursor_execute(Connection(), None, statement, (), context, False)
    context._otel_span.end()  # type: ignore[attr-defined]

    [span] = [s for s in spans.get_finished_spans() if s.name == "SELECT item"]
    assert span.attributes["db.statement"] == "SELECT * FROM item WHERE name = ?"
    assert span.attributes["db.query.text"] == "SELECT * FROM item WHERE name = ?"
    assert span.attributes["db.system.name"] == "sqlite"


def test_parameters_are_recorded_only_when_switched_on(
    engine: sqlalchemy.Engine, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    from otel_django import runtime
    from otel_django.db.sqlalchemy import _Hooks

    live = runtime.current()
    hooks = live.sqlalchemy_hooks
    assert hooks is not None
    opted = _Hooks(live.config.replace(RECORD_QUERY_PARAMETERS=True), live.insight, hooks.duration)
    spans.clear()
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text("SELECT name FROM item WHERE name = :name"), {"name": CANARY})
        # Hooks recording parameters in place of the process's, for one statement.
        sqlalchemy.event.remove(
            sqlalchemy.Engine, "after_cursor_execute", hooks.after_cursor_execute
        )
        sqlalchemy.event.listen(
            sqlalchemy.Engine, "after_cursor_execute", opted.after_cursor_execute
        )
        try:
            conn.execute(sqlalchemy.text("SELECT name FROM item WHERE id = :id"), {"id": 2})
        finally:
            sqlalchemy.event.remove(
                sqlalchemy.Engine, "after_cursor_execute", opted.after_cursor_execute
            )
            sqlalchemy.event.listen(
                sqlalchemy.Engine, "after_cursor_execute", hooks.after_cursor_execute
            )

    off, opted = statement_spans(spans)
    assert CANARY not in str(dict(off.attributes))
    assert not [k for k in off.attributes if k.startswith("db.query.parameter.")]
    assert opted.attributes["db.query.parameter.0"] == "2"  # sqlite's qmark: by position
