"""The cost per query of otel_django's query insight, over plain DB spans.

Every query here is fast (SQLite in memory, ``SELECT ?``), inside a request scope with a
sampled span current: the path nearly every production query takes. Candidates:

* Django ORM connection: no wrapper; otel_django's QueryObserver without its insight hooks
  (one span, one histogram point, a cached SQL description: plain DB spans); the same with the
  hooks (N+1 counting and the slow-query comparison). The difference of the last two is what
  the hooks cost. A query repeated in the same scope (past the N+1 threshold) is measured too.
* SQLAlchemy engine: no instrumentation; upstream ``SQLAlchemyInstrumentor`` spans; upstream
  spans plus otel_django's listeners (sanitized text, summary, rename, insight).

A second comparison shows what one *slow* query costs on top (stack walk, span event, log
line, counter), without EXPLAIN. Target (issue 4): the hooks cost under 3 µs per fast query.
The first comparison isolates them (what a fast query pays for insight); in the others they
are within the noise of a query with its span.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

from benchmarks.harness import Comparison, compare

UNIT = "query"


def _setup_django() -> None:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
            INSTALLED_APPS=[],
            USE_TZ=True,
        )
    django.setup()


def _setup_providers() -> None:
    import os

    import structlog
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http,database")  # as otel_django does
    trace.set_tracer_provider(TracerProvider())
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    # Slow-query log lines are rendered and dropped, not written.
    structlog.configure(
        processors=[structlog.processors.JSONRenderer()],
        logger_factory=structlog.ReturnLoggerFactory(),
    )


@contextlib.contextmanager
def _in_a_request() -> Iterator[None]:
    from opentelemetry import trace

    from otel_django import runtime
    from otel_django.db import insight

    with trace.get_tracer("bench").start_as_current_span("GET /bench") as span:
        token = insight.begin_request(span, runtime.current().insight)
        try:
            yield
        finally:
            insight.end_request(token)


def _django_candidates(config: Any) -> dict[str, Callable[[], object]]:
    from django.db import connections

    connection = connections["default"]  # the wrapper itself: the proxy costs µs per access

    from otel_django import runtime
    from otel_django.db.django import QueryObserver

    process = dataclasses.replace(runtime.current(), config=config)
    plain = QueryObserver(config, None, pipeline_source=process)
    hooked = QueryObserver(config, process.insight, pipeline_source=process)
    connection.ensure_connection()
    cursor = connection.cursor()
    candidates: dict[str, Callable[[], object]] = {}

    def run_with(wrapper: Any, sql: str) -> Callable[[], object]:
        def one() -> object:
            if wrapper is None:
                return cursor.execute(sql, [1])
            connection.execute_wrappers.append(wrapper)
            try:
                return cursor.execute(sql, [1])
            finally:
                connection.execute_wrappers.pop()

        return one

    # Distinct SQL per candidate, so each has its own shape in the scope; "repeated" reuses one.
    candidates["django: no wrapper"] = run_with(None, "SELECT %s")
    candidates["django: plain DB spans"] = run_with(plain, "SELECT %s AS plain")
    candidates["django: spans + insight hooks"] = run_with(hooked, "SELECT %s AS hooked")
    return candidates


def _add_wrapper_cost(candidates: dict[str, Callable[[], object]]) -> None:
    """The wrapper push/pop the Django candidates pay, measured alone, to subtract it."""
    from django.db import connections

    connection = connections["default"]  # the wrapper itself: the proxy costs µs per access

    def nothing(
        execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]
    ) -> Any:
        return execute(sql, params, many, context)

    cursor = connection.cursor()

    def one() -> object:
        connection.execute_wrappers.append(nothing)
        try:
            return cursor.execute("SELECT %s AS bare", [1])
        finally:
            connection.execute_wrappers.pop()

    candidates["django: pass-through wrapper"] = one


def _sqlalchemy_candidates(config: Any) -> dict[str, Callable[[], object]]:
    import sqlalchemy
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from otel_django import runtime
    from otel_django.db.sqlalchemy import _Hooks

    bare_engine = sqlalchemy.create_engine("sqlite://")
    instrumentor = SQLAlchemyInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()
    upstream_engine = sqlalchemy.create_engine("sqlite://")
    hooked_engine = sqlalchemy.create_engine("sqlite://")
    hooks = _Hooks(config, dataclasses.replace(runtime.current(), config=config).insight)

    # Class-level, as otel_django installs them (they run before the engine's own listeners),
    # limited to one engine by an identity check both SQLAlchemy candidates pay.
    def only_hooked(method: Callable[..., None]) -> Callable[..., None]:
        def listener(conn: Any, *args: Any) -> None:
            if conn.engine is hooked_engine:
                method(conn, *args)

        return listener

    listeners = [
        ("before_cursor_execute", only_hooked(hooks.before_cursor_execute)),
        ("after_cursor_execute", only_hooked(hooks.after_cursor_execute)),
    ]
    for name, listener in listeners:
        event.listen(Engine, name, listener)

    candidates: dict[str, Callable[[], object]] = {}
    for name, engine in (
        ("sqlalchemy: no instrumentation", bare_engine),
        ("sqlalchemy: upstream spans", upstream_engine),
        ("sqlalchemy: upstream spans + otel_django", hooked_engine),
    ):
        conn = engine.connect()

        def one(conn: Any = conn) -> object:
            return conn.exec_driver_sql("SELECT ?", (1,))

        candidates[name] = one
    return candidates


def _slow_candidates(config: Any) -> dict[str, Callable[[], object]]:

    from django.db import connections

    connection = connections["default"]  # the wrapper itself: the proxy costs µs per access

    from otel_django import runtime
    from otel_django.db.django import QueryObserver

    slow_config = config.replace(slow_query_ms=0.0)
    cursor = connection.cursor()

    def run(threshold_config: Any) -> Callable[[], object]:
        process = dataclasses.replace(runtime.current(), config=threshold_config)
        hooked = QueryObserver(threshold_config, process.insight, pipeline_source=process)

        def one() -> object:
            connection.execute_wrappers.append(hooked)
            try:
                return cursor.execute("SELECT %s AS slow", [1])
            finally:
                connection.execute_wrappers.pop()

        return one

    return {"fast query": run(config), "slow query (every query slow)": run(slow_config)}


def _hook_candidates(config: Any) -> dict[str, Callable[[], object]]:
    """Exactly what the hooks add to a fast query, without the query and span around it."""
    from otel_django import runtime
    from otel_django.db.sql import describe

    live = dataclasses.replace(runtime.current(), config=config).insight
    description = describe('SELECT "shop_product"."id" FROM "shop_product" WHERE "id" = %s')

    def nothing() -> object:
        return None

    def hooks() -> object:
        live.count(description, "sqlite")
        duration = 0.0001
        return duration >= live.slow_s

    return {"nothing": nothing, "insight hooks": hooks}


def run(quick: bool) -> list[Comparison]:
    from otel_django.config import load_config

    _setup_django()
    _setup_providers()
    config = load_config({}, {})
    inner, rounds = (200, 5) if quick else (3000, 21)
    with _in_a_request():
        hooks = compare(
            "The insight hooks alone, per fast query",
            _hook_candidates(config),
            unit=UNIT,
            inner=inner * 10,
            rounds=rounds,
            baseline="nothing",
            notes="N+1 counting (one dict increment) and the slow-query comparison: all a "
            "fast query pays for insight. Target < 3 us.",
        )
    with _in_a_request():
        django_candidates = _django_candidates(config)
        _add_wrapper_cost(django_candidates)
        django = compare(
            "Django ORM: cost per fast query of the insight hooks",
            django_candidates,
            unit=UNIT,
            inner=inner,
            rounds=rounds,
            baseline="django: plain DB spans",
            notes="Target: hooks (spans + insight hooks minus plain DB spans) < 3 us. "
            "Wrapped candidates include the benchmark's own wrapper push/pop, as "
            "'pass-through wrapper' shows.",
        )
        alchemy = compare(
            "SQLAlchemy: cost per fast query of otel_django over upstream spans",
            _sqlalchemy_candidates(config),
            unit=UNIT,
            inner=inner,
            rounds=rounds,
            baseline="sqlalchemy: upstream spans",
            notes="Target: < 3 us. Most of it is the SDK validating the 2-3 attributes "
            "corrected on upstream's span (summary, operation, collection; the text too when "
            "it had literals or comments); the insight part is the hooks' figure above.",
        )
        slow = compare(
            "Django ORM: what a slow query costs on top (no EXPLAIN)",
            _slow_candidates(config),
            unit=UNIT,
            inner=max(50, inner // 10),
            rounds=rounds,
            baseline="fast query",
            notes="Paid once per slow query: stack walk, span attributes and event, log line, "
            "counter.",
        )
    return [hooks, django, alchemy, slow]


if __name__ == "__main__":
    import sys

    for result in run(quick="--quick" in sys.argv):
        print(result.title)
        for name, fig in result.figures.items():
            overhead = result.overhead_us(name)
            print(
                f"  {name:45s} {fig.median_us:7.2f} us  (IQR {fig.spread_pct:4.1f} %)"
                f"  +{overhead:6.2f} us"
            )
