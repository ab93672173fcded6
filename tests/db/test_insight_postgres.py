"""Slow queries, N+1 patterns and EXPLAIN on real PostgreSQL, through the real middleware.

Each test calls a view in ``tests/db/views.py`` with Django's test client and reads the spans
the SDK finished, the structlog events and the otel_django counters.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
from django.db import IntegrityError, connections, transaction
from django.test import Client
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from shop.models import Category, Product

from otel_django.config import Config
from otel_django.db.explain import explain_postgresql
from tests.db import views
from tests.support.metrics import counter_points, counter_total
from tests.support.spans import events, query_spans, server_span

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(databases=["default", "postgres"]),
    pytest.mark.urls("tests.db.urls"),
]

ALIAS = "postgres"


def line_of(function: Callable[..., Any], marker: str) -> int:
    lines, first = inspect.getsourcelines(function)
    return first + next(n for n, line in enumerate(lines) if marker in line)


@pytest.mark.smoke
def test_slow_query_marks_its_span_with_duration_and_the_views_code_location(
    spans: InMemorySpanExporter, logs: list[dict[str, Any]], override_config: Callable[..., Config]
) -> None:
    override_config(slow_query_ms=100)
    before = counter_total("otel_django.db.slow_queries")

    response = Client().get("/db/slow/")

    assert response.status_code == 200
    [query] = [s for s in query_spans(spans) if "pg_sleep" in str(s.attributes["db.query.text"])]
    attributes = dict(query.attributes or {})
    assert query.name == "SELECT"
    assert attributes["db.system.name"] == "postgresql"
    assert attributes["db.query.text"] == "SELECT pg_sleep(%s)"
    assert attributes["otel_django.db.slow"] is True
    assert attributes["otel_django.db.duration_ms"] >= 150
    assert attributes["code.file.path"] == inspect.getfile(views.slow)
    assert attributes["code.line.number"] == line_of(views.slow, "the slow query")
    assert attributes["code.function.name"] == "tests.db.views.slow"
    # The span ends when the query does, not after otel_django's own work.
    assert (query.end_time - query.start_time) / 1e6 < attributes["otel_django.db.duration_ms"] + 20

    request = server_span(spans)
    [event] = events(request, "slow_query")
    assert event["db.query.summary"] == "SELECT"
    assert event["code.line.number"] == attributes["code.line.number"]
    assert event["otel_django.db.duration_ms"] == attributes["otel_django.db.duration_ms"]

    [line] = [e for e in logs if e["event"] == "slow_query"]
    assert line["log_level"] == "warning"
    assert line["db.query.text"] == "SELECT pg_sleep(%s)"
    assert line["code.file.path"] == inspect.getfile(views.slow)
    assert line["duration_ms"] >= 150

    assert counter_total("otel_django.db.slow_queries") == before + 1
    labels = [a for a, _ in counter_points("otel_django.db.slow_queries")]
    assert {"db.system.name": "postgresql", "db.operation.name": "SELECT"} in labels


def test_fast_query_is_not_marked_slow(
    spans: InMemorySpanExporter, logs: list[dict[str, Any]], pg_shop: str
) -> None:
    spans.clear()  # the seeding queries
    response = Client().get("/db/fast/")

    assert response.status_code == 200
    [query] = query_spans(spans)
    attributes = dict(query.attributes or {})
    assert query.name == "SELECT shop_product"
    assert attributes["db.query.summary"] == "SELECT shop_product"
    assert attributes["db.collection.name"] == "shop_product"
    assert "otel_django.db.slow" not in attributes
    assert "code.file.path" not in attributes
    assert not events(server_span(spans), "slow_query")
    assert not [e for e in logs if e["event"] in ("slow_query", "n_plus_one")]


@pytest.mark.smoke
def test_n_plus_one_loop_records_exactly_one_event_log_line_and_count(
    spans: InMemorySpanExporter,
    logs: list[dict[str, Any]],
    pg_shop: str,
    override_config: Callable[..., Config],
) -> None:
    override_config(n_plus_one_threshold=5)
    before = counter_total("otel_django.db.n_plus_one")
    spans.clear()

    response = Client().get("/db/n-plus-one/")

    assert response.status_code == 200
    category_queries = [s for s in query_spans(spans) if s.name == "SELECT shop_category"]
    assert len(category_queries) == 8
    [event] = events(server_span(spans), "n_plus_one")
    assert event["db.query.summary"] == "SELECT shop_category"
    assert event["otel_django.db.count"] == 8
    assert event["db.system.name"] == "postgresql"
    assert event["code.file.path"] == inspect.getfile(views.n_plus_one)
    assert event["code.line.number"] == line_of(views.n_plus_one, "one query per product")
    assert (
        event["code.function.name"].endswith("n_plus_one.<locals>.<listcomp>")
        or event["code.function.name"] == "tests.db.views.n_plus_one"
    )
    [line] = [e for e in logs if e["event"] == "n_plus_one"]
    assert line["log_level"] == "warning"
    assert line["count"] == 8
    assert line["db.query.summary"] == "SELECT shop_category"
    assert counter_total("otel_django.db.n_plus_one") == before + 1
    labels = [a for a, _ in counter_points("otel_django.db.n_plus_one")]
    assert {
        "db.system.name": "postgresql",
        "db.operation.name": "SELECT",
        "db.collection.name": "shop_category",
    } in labels


@pytest.mark.parametrize("url", ["/db/select-related/", "/db/prefetch-related/"])
def test_select_related_and_prefetch_related_record_nothing(
    url: str, spans: InMemorySpanExporter, logs: list[dict[str, Any]], pg_shop: str
) -> None:
    before = counter_total("otel_django.db.n_plus_one")
    spans.clear()

    response = Client().get(url)

    assert response.status_code == 200
    assert len(query_spans(spans)) <= 2
    assert not events(server_span(spans), "n_plus_one")
    assert not [e for e in logs if e["event"] == "n_plus_one"]
    assert counter_total("otel_django.db.n_plus_one") == before


def test_n_plus_one_is_counted_per_request(
    spans: InMemorySpanExporter, pg_shop: str, override_config: Callable[..., Config]
) -> None:
    override_config(n_plus_one_threshold=5)
    before = counter_total("otel_django.db.n_plus_one")
    client = Client()

    client.get("/db/n-plus-one/")
    client.get("/db/n-plus-one/")

    assert counter_total("otel_django.db.n_plus_one") == before + 2
    override_config(n_plus_one_threshold=9)
    client.get("/db/n-plus-one/")
    assert counter_total("otel_django.db.n_plus_one") == before + 2


@pytest.mark.usefixtures("within_a_span")
def test_explain_shows_a_sequential_scan_for_an_unindexed_filter(
    spans: InMemorySpanExporter, pg_shop: str, override_config: Callable[..., Config]
) -> None:
    override_config(slow_query_ms=0, explain_enabled=True)
    spans.clear()

    list(Product.objects.using(ALIAS).filter(name="product-3-" + views.CANARY))

    [query] = [s for s in query_spans(spans) if s.name == "SELECT shop_product"]
    plan = str(query.attributes["otel_django.db.explain"])
    assert "Seq Scan on shop_product" in plan
    assert "Filter:" in plan
    assert views.CANARY not in plan  # the plan quotes the parameter: scrubbed
    assert "ANALYZE" not in plan and "actual time" not in plan


@pytest.mark.usefixtures("within_a_span")
def test_explain_is_rate_limited_per_query_shape(
    spans: InMemorySpanExporter, pg_shop: str, override_config: Callable[..., Config]
) -> None:
    override_config(slow_query_ms=0, explain_enabled=True, explain_interval_s=300)
    spans.clear()

    for n in range(3):
        list(Product.objects.using(ALIAS).filter(name=f"x{n}"))
    list(Category.objects.using(ALIAS).filter(name="y"))

    explained = [s.name for s in query_spans(spans) if "otel_django.db.explain" in s.attributes]
    assert explained == ["SELECT shop_product", "SELECT shop_category"]


@pytest.mark.usefixtures("within_a_span")
def test_explain_is_never_run_for_writes_and_is_off_by_default(
    spans: InMemorySpanExporter, pg_shop: str, override_config: Callable[..., Config]
) -> None:
    override_config(slow_query_ms=0)
    spans.clear()
    list(Product.objects.using(ALIAS).all())
    override_config(slow_query_ms=0, explain_enabled=True)
    Category.objects.using(ALIAS).create(name="written")
    Category.objects.using(ALIAS).filter(name="written").update(name="renamed")

    for span in query_spans(spans):
        assert span.attributes["otel_django.db.slow"] is True
        assert "otel_django.db.explain" not in span.attributes


def _transaction_scenarios() -> dict[str, Any]:
    """Two transactions: one that fails and must roll back, one that recovers via a savepoint."""
    outcome: dict[str, Any] = {}
    try:
        with transaction.atomic(using=ALIAS):
            Category.objects.using(ALIAS).create(name="tx-a")
            list(Product.objects.using(ALIAS).filter(name="nothing"))  # slow: EXPLAINed
            Category.objects.using(ALIAS).create(name="tx-a")  # unique violation
    except IntegrityError as exc:
        outcome["first"] = type(exc).__name__
    with transaction.atomic(using=ALIAS):
        Category.objects.using(ALIAS).create(name="tx-b")
        try:
            with transaction.atomic(using=ALIAS):
                Category.objects.using(ALIAS).create(name="tx-b")
        except IntegrityError as exc:
            outcome["second"] = type(exc).__name__
        list(Product.objects.using(ALIAS).filter(name="still-works"))  # slow: EXPLAINed
    connection = connections[ALIAS]
    outcome["rows"] = sorted(
        Category.objects.using(ALIAS).filter(name__startswith="tx-").values_list("name", flat=True)
    )
    outcome["in_atomic_block"] = connection.in_atomic_block
    outcome["needs_rollback"] = connection.needs_rollback
    outcome["status"] = int(connection.connection.info.transaction_status)
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        outcome["statement_timeout"] = cursor.fetchone()[0]
    Category.objects.using(ALIAS).filter(name__startswith="tx-").delete()
    return outcome


@pytest.mark.smoke
@pytest.mark.django_db(databases=["default", "postgres"], transaction=True)
@pytest.mark.usefixtures("within_a_span")
def test_failing_query_in_atomic_rolls_back_exactly_as_without_otel_django(
    spans: InMemorySpanExporter,
    override_config: Callable[..., Config],
    without_observer: Callable[[str], Any],
) -> None:
    with without_observer(ALIAS):
        expected = _transaction_scenarios()
    assert not query_spans(spans)
    override_config(slow_query_ms=0, explain_enabled=True, explain_interval_s=0)

    observed = _transaction_scenarios()

    assert observed == expected
    assert expected["first"] == expected["second"] == "IntegrityError"
    assert expected["rows"] == ["tx-b"]
    explained = [s for s in query_spans(spans) if "otel_django.db.explain" in s.attributes]
    assert len(explained) >= 2
    failed = [s for s in query_spans(spans) if s.attributes.get("error.type")]
    assert {s.attributes["error.type"] for s in failed} == {"django.db.utils.IntegrityError"}
    assert {s.attributes["db.response.status_code"] for s in failed} == {"23505"}
    for span in failed:  # the error message quotes the duplicate value: it is left out
        assert not [e for e in span.events if "tx-" in str(e.attributes)]
        assert "tx-" not in (span.status.description or "")


@pytest.mark.django_db(databases=["default", "postgres"], transaction=True)
def test_explain_leaves_failed_and_busy_transactions_alone() -> None:
    connection = connections[ALIAS]
    with transaction.atomic(using=ALIAS):
        raw = connection.connection
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        assert explain_postgresql(raw, raw.cursor, "SELECT 1", None, 100) is not None
        try:
            with raw.cursor() as cursor:  # fail the transaction behind Django's back
                cursor.execute("SELECT 1/0")
        except Exception:
            pass
        status_before = raw.info.transaction_status

        assert explain_postgresql(raw, raw.cursor, "SELECT 1", None, 100) is None

        assert raw.info.transaction_status == status_before  # still failed, not rolled back
        transaction.set_rollback(True, using=ALIAS)


@pytest.mark.django_db(databases=["default", "postgres"], transaction=True)
def test_explain_time_budget_is_enforced_and_harmless() -> None:
    connection = connections[ALIAS]
    connection.ensure_connection()
    raw = connection.connection
    # Planning this takes longer than 1 ms: the EXPLAIN is cancelled, and nothing else is.
    sql = "SELECT " + " + ".join(
        f"(SELECT count(*) FROM generate_series(1, {n}))" for n in range(1, 400)
    )
    plan = explain_postgresql(raw, raw.cursor, sql, None, 1)
    assert plan is None or "Result" in plan
    assert raw.info.transaction_status == 0
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "0"
