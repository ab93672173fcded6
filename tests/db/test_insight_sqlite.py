"""Query spans and insight on SQLite (the ``default`` alias) and the demo's own views."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest
from django.db import DatabaseError, connection, connections
from django.test import AsyncClient, Client
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from shop.models import Category, Product

from otel_django import runtime
from otel_django.config import Config
from otel_django.db import insight
from otel_django.db.django import QueryObserver
from otel_django.db.explain import explain_sqlite
from tests.support.metrics import counter_total
from tests.support.shop import seed
from tests.support.spans import events, query_spans, server_span

pytestmark = pytest.mark.django_db
CANARY = "sqlite-canary-31337"


@pytest.fixture
def shop() -> None:
    seed("default", products=7)


@pytest.mark.smoke
def test_demo_n_plus_one_view_reports_one_pattern_and_select_related_view_none(
    spans: InMemorySpanExporter,
    shop: None,
    override_config: Callable[..., Config],
    logs: list[dict[str, Any]],
) -> None:
    override_config(n_plus_one_threshold=5)
    spans.clear()

    assert Client().get("/n-plus-one/").status_code == 200
    [event] = events(server_span(spans), "n_plus_one")
    assert event["otel_django.db.count"] == 7
    assert event["db.query.summary"] == "SELECT shop_category"
    assert event["db.system.name"] == "sqlite"
    assert event["code.file.path"].endswith("examples/demo/shop/views.py")

    spans.clear()
    assert Client().get("/products/").status_code == 200  # select_related
    assert not events(server_span(spans), "n_plus_one")
    assert len([e for e in logs if e["event"] == "n_plus_one"]) == 1


@pytest.mark.smoke
@pytest.mark.usefixtures("within_a_span")
def test_explain_query_plan_on_sqlite(
    spans: InMemorySpanExporter, shop: None, override_config: Callable[..., Config]
) -> None:
    override_config(slow_query_ms=0, explain_enabled=True, explain_interval_s=0)
    spans.clear()

    list(Product.objects.filter(name=CANARY))
    Product.objects.filter(pk=1).first()

    scan, search = [str(s.attributes["otel_django.db.explain"]) for s in query_spans(spans)]
    assert scan.startswith("SCAN shop_product")
    assert "SEARCH shop_product USING INTEGER PRIMARY KEY" in search
    assert CANARY not in scan + search


COUNT_TO_A_MILLION = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000) "
    "SELECT count(*) FROM c"
)


def test_explain_sqlite_honours_its_time_budget_and_removes_its_handler() -> None:
    connection.ensure_connection()
    raw = connection.connection

    class SlowExplainCursor:  # stands for an EXPLAIN that takes too long
        def __init__(self) -> None:
            self.cursor = raw.cursor()

        def execute(self, sql: str, params: Any = None) -> None:
            self.cursor.execute(COUNT_TO_A_MILLION)

        def fetchall(self) -> list[Any]:
            return self.cursor.fetchall()

        def close(self) -> None:
            self.cursor.close()

    sql = "SELECT * FROM shop_product WHERE id = %s"
    assert explain_sqlite(raw, SlowExplainCursor, sql, [1], 5) is None
    plan = explain_sqlite(raw, connection.create_cursor, sql, [1], 5)
    assert plan is not None and "SEARCH shop_product" in plan
    with connection.cursor() as cursor:  # no handler left to interrupt the application's query
        cursor.execute(COUNT_TO_A_MILLION)
        assert cursor.fetchone()[0] == 1_000_000


@pytest.mark.usefixtures("within_a_span")
def test_query_parameters_are_recorded_only_when_switched_on(
    spans: InMemorySpanExporter, shop: None
) -> None:
    config = runtime.current().config
    connection.ensure_connection()
    spans.clear()
    live = runtime.current().observer
    connection.execute_wrappers.remove(live)
    try:
        for record in (False, True):
            opted = QueryObserver(config.replace(record_query_parameters=record))
            with connection.execute_wrapper(opted):
                list(Product.objects.filter(name=CANARY, price_cents=5))
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT %(password)s, %(name)s", {"password": CANARY, "name": "x"}
                    )
    finally:
        connection.execute_wrappers.insert(0, live)
    off_orm, off_named, on_orm, on_named = [dict(s.attributes) for s in query_spans(spans)]
    assert not [k for k in {**off_orm, **off_named} if k.startswith("db.query.parameter.")]
    assert CANARY not in str(off_orm) + str(off_named)
    assert on_orm["db.query.parameter.0"] == CANARY
    assert on_orm["db.query.parameter.1"] == "5"
    assert on_named["db.query.parameter.password"] == "[REDACTED]"  # sensitive names stay redacted
    assert on_named["db.query.parameter.name"] == "x"


@pytest.mark.usefixtures("within_a_span")
def test_failing_query_records_its_error_type_but_not_its_message(
    spans: InMemorySpanExporter, override_config: Callable[..., Config]
) -> None:
    override_config(slow_query_ms=0)
    spans.clear()
    with pytest.raises(DatabaseError), connection.cursor() as cursor:
        cursor.execute(
            f"SELECT * FROM no_such_table_{CANARY.replace('-', '_')} WHERE a = '{CANARY}'"
        )

    [span] = query_spans(spans)
    assert span.status.status_code.name == "ERROR"
    assert span.attributes["error.type"] == "django.db.utils.OperationalError"
    assert "otel_django.db.slow" not in span.attributes  # failures are not slow-query reports
    assert CANARY not in str(span.attributes["db.query.text"])
    assert not span.events and not span.status.description


def test_query_outside_any_request_is_not_traced_but_still_logged_and_counted(
    spans: InMemorySpanExporter, override_config: Callable[..., Config], logs: list[dict[str, Any]]
) -> None:
    override_config(slow_query_ms=0, n_plus_one_threshold=2)
    before = counter_total("otel_django.db.slow_queries")
    spans.clear()
    for _ in range(3):
        Category.objects.filter(name="x").exists()

    assert not spans.get_finished_spans()  # migrations, startup, commands: no root spans
    assert counter_total("otel_django.db.slow_queries") == before + 3
    assert [e["event"] for e in logs] == ["slow_query"] * 3  # no scope: no N+1 report
    assert logs[0]["code.function.name"] == (
        "tests.db.test_insight_sqlite."
        "test_query_outside_any_request_is_not_traced_but_still_logged_and_counted"
    )


def test_scope_reports_n_plus_one_once_with_the_final_count(
    spans: InMemorySpanExporter,
    shop: None,
    override_config: Callable[..., Config],
    logs: list[dict[str, Any]],
) -> None:
    override_config(n_plus_one_threshold=3)
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("task") as span:
        token = insight.begin_request(span, runtime.current().insight)
        for product in Product.objects.all():
            product.category.name  # noqa: B018
        for _ in range(4):
            list(Category.objects.filter(name="a"))
        insight.end_request(token)
    assert insight.current_scope() is None
    [task] = [s for s in spans.get_finished_spans() if s.name == "task"]
    found = events(task, "n_plus_one")
    assert sorted(e["otel_django.db.count"] for e in found) == [4, 7]
    assert len([e for e in logs if e["event"] == "n_plus_one"]) == 2


@pytest.mark.django_db(transaction=True)  # the view's thread has its own connection
def test_async_view_queries_count_in_the_request_scope(
    spans: InMemorySpanExporter, shop: None, override_config: Callable[..., Config], settings: Any
) -> None:
    settings.ROOT_URLCONF = "tests.db.async_urls"
    override_config(n_plus_one_threshold=5)
    spans.clear()

    import asyncio

    response = asyncio.run(AsyncClient().get("/db/async-n-plus-one/"))

    assert response.status_code == 200
    [event] = events(server_span(spans), "n_plus_one")
    assert event["otel_django.db.count"] == 7


def test_caller_location_skips_library_frames() -> None:
    def issue() -> tuple[insight.Location | None, int]:
        return insight.caller_location(), sys._getframe().f_lineno

    location, line = issue()
    assert location is not None
    assert location.file == __file__
    assert location.function.endswith("test_caller_location_skips_library_frames.<locals>.issue")
    assert location.line == line


def _in_place_of_the_live_observer(
    monkeypatch: pytest.MonkeyPatch, replacement: QueryObserver
) -> None:
    connection.ensure_connection()
    live = runtime.current().observer
    assert live in connection.execute_wrappers
    wrappers = [replacement if w is live else w for w in connection.execute_wrappers]
    monkeypatch.setattr(connections["default"], "execute_wrappers", wrappers)


@pytest.mark.usefixtures("within_a_span")
def test_insight_never_raises_into_the_query(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("telemetry bug")

    config = runtime.current().config.replace(SLOW_QUERY_MS=0)
    slow_and_broken = insight.Insight(config.db, locate=broken)
    _in_place_of_the_live_observer(monkeypatch, QueryObserver(config, slow_and_broken))
    spans.clear()
    assert Category.objects.count() == 0
    assert [s.kind for s in spans.get_finished_spans()] == [SpanKind.CLIENT]


def test_a_failure_before_the_query_never_stops_it(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("telemetry bug")

    live = runtime.current()
    _in_place_of_the_live_observer(
        monkeypatch, QueryObserver(live.config, live.insight, describe=broken)
    )
    spans.clear()
    assert Category.objects.count() == 0
    assert not spans.get_finished_spans()


def test_caller_location_prefers_application_code_over_installed_packages() -> None:
    """A library outside the skip list (a serializer package, say) is not the answer."""
    import os

    library = os.path.join(os.sep, "venv", "lib", "site-packages", "serializers", "fields.py")
    namespace: dict[str, Any] = {"__name__": "serializers.fields", "insight": insight}
    exec(
        compile("def get_attribute():\n    return insight.caller_location()\n", library, "exec"),
        namespace,
    )

    def view() -> tuple[insight.Location | None, int]:
        return namespace["get_attribute"](), sys._getframe().f_lineno

    location, line = view()
    assert location is not None
    assert (location.file, location.line) == (__file__, line)
