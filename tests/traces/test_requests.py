"""Server, ORM, SQLAlchemy and Redis spans, in process, as the SDK hands them to exporters."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.db import connections
from django.http import Http404
from django.test import Client, override_settings
from django.urls import include
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from shop.models import Category, Product

from tests.support.spans import children_of, server_span

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def product(db: None) -> Product:
    return Product.objects.create(
        name="lamp", price_cents=1999, category=Category.objects.create(name="home")
    )


@pytest.mark.smoke
def test_request_makes_a_server_span_named_by_route_with_orm_children(
    spans: InMemorySpanExporter, product: Product
) -> None:
    spans.clear()
    response = Client().get(f"/products/{product.pk}/?page=2", HTTP_USER_AGENT="pytest")
    assert response.status_code == 200
    finished = list(spans.get_finished_spans())
    server = server_span(finished)
    assert server.name == "GET products/<int:pk>/"
    attributes = dict(server.attributes or {})
    assert attributes["http.route"] == "products/<int:pk>/"
    assert attributes["http.request.method"] == "GET"
    assert attributes["http.response.status_code"] == 200
    assert attributes["url.path"] == f"/products/{product.pk}/"
    assert attributes["url.query"] == "page=2"
    assert attributes["url.scheme"] == "http"
    assert attributes["user_agent.original"] == "pytest"
    assert attributes["otel_django.request_id"] == response.headers["X-Request-ID"]
    queries = children_of(server, finished)
    assert len(queries) == 1
    query = queries[0]
    assert query.name.startswith("SELECT shop_product")  # the join adds shop_category
    assert query.kind is SpanKind.CLIENT
    q_attributes = dict(query.attributes or {})
    assert q_attributes["db.system.name"] == "sqlite"
    assert q_attributes["db.operation.name"] == "SELECT"
    assert q_attributes["db.query.summary"] == query.name
    assert str(product.pk) not in q_attributes["db.query.text"].split("LIMIT")[0].split("=")[-1]


def test_incoming_traceparent_continues_the_callers_trace(
    spans: InMemorySpanExporter, product: Product
) -> None:
    spans.clear()
    Client().get("/products/", HTTP_TRACEPARENT=TRACEPARENT)
    server = server_span(list(spans.get_finished_spans()))
    assert server.context is not None and server.parent is not None
    assert f"{server.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert f"{server.parent.span_id:016x}" == "b7ad6b7169203331"
    assert server.parent.is_remote


def test_malformed_traceparent_starts_a_new_trace(spans: InMemorySpanExporter, db: None) -> None:
    spans.clear()
    response = Client().get("/products/", HTTP_TRACEPARENT="00-zz-\r\n-01")
    assert response.status_code == 200
    server = server_span(list(spans.get_finished_spans()))
    assert server.parent is None


def test_unmatched_path_never_becomes_a_route(spans: InMemorySpanExporter, db: None) -> None:
    spans.clear()
    assert Client().get("/no/such/page/12345").status_code == 404
    server = server_span(list(spans.get_finished_spans()))
    assert server.name == "GET"
    assert "http.route" not in (server.attributes or {})
    assert server.attributes is not None and server.attributes["http.response.status_code"] == 404


def test_unknown_method_is_recorded_as_other(spans: InMemorySpanExporter, db: None) -> None:
    spans.clear()
    Client().generic("FROBNICATE", "/products/")
    server = server_span(list(spans.get_finished_spans()))
    assert server.attributes is not None
    assert server.attributes["http.request.method"] == "_OTHER"
    assert server.attributes["http.request.method_original"] == "FROBNICATE"
    assert server.name == "HTTP products/"


def test_unknown_methods_are_other_even_when_upstream_would_capture_all(
    spans: InMemorySpanExporter, db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unlike ``opentelemetry.util.http.sanitize_method``, which keeps any method under
    ``OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS``: the method is a metric label,
    and a client must not choose its values."""
    monkeypatch.setenv("OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS", "true")
    spans.clear()
    Client().generic("FROBNICATE", "/products/")
    server = server_span(list(spans.get_finished_spans()))
    assert server.attributes is not None
    assert server.attributes["http.request.method"] == "_OTHER"
    assert server.attributes["http.request.method_original"] == "FROBNICATE"


def test_view_exception_marks_the_span_as_error(spans: InMemorySpanExporter, db: None) -> None:
    spans.clear()
    response = Client(raise_request_exception=False).get("/boom/")
    assert response.status_code == 500
    server = server_span(list(spans.get_finished_spans()))
    assert server.status.status_code is StatusCode.ERROR
    assert server.attributes is not None and server.attributes["error.type"] == "RuntimeError"
    assert [e.name for e in server.events] == ["exception"]


def test_excluded_urls_make_no_span(spans: InMemorySpanExporter, db: None) -> None:
    spans.clear()
    Client().get("/healthz")
    assert [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER] == []


@pytest.mark.django_db(databases=["default", "postgres"])
@pytest.mark.postgres
def test_postgresql_queries_are_spans_of_the_request(spans: InMemorySpanExporter) -> None:
    from django.http import HttpRequest, JsonResponse
    from django.urls import path

    def pg_view(request: HttpRequest) -> JsonResponse:
        with connections["postgres"].cursor() as cursor:
            cursor.execute("SELECT count(*) FROM shop_product WHERE price_cents > %s", [100])
            (count,) = cursor.fetchone()
        return JsonResponse({"count": count})

    urlconf = type("urls", (), {"urlpatterns": [path("pg/", pg_view)]})
    spans.clear()
    with override_settings(ROOT_URLCONF=urlconf):
        assert Client().get("/pg/").status_code == 200
    finished = list(spans.get_finished_spans())
    server = server_span(finished)
    (query,) = children_of(server, finished)
    attributes = dict(query.attributes or {})
    assert query.name == "SELECT shop_product"
    assert attributes["db.system.name"] == "postgresql"
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["server.port"] == 5432
    assert "100" not in attributes["db.query.text"]


def test_sqlalchemy_engine_spans_are_children_of_the_request(
    spans: InMemorySpanExporter, db: None
) -> None:
    import sqlalchemy
    from django.http import HttpRequest, JsonResponse
    from django.urls import path

    engine = sqlalchemy.create_engine("sqlite://")

    def sa_view(request: HttpRequest) -> JsonResponse:
        with engine.connect() as conn:
            value = conn.execute(sqlalchemy.text("SELECT :x + 1"), {"x": 41}).scalar_one()
        return JsonResponse({"value": value})

    urlconf = type("urls", (), {"urlpatterns": [path("sa/", sa_view)]})
    spans.clear()
    with override_settings(ROOT_URLCONF=urlconf):
        assert Client().get("/sa/").json() == {"value": 42}
    finished = list(spans.get_finished_spans())
    server = server_span(finished)
    children = children_of(server, finished)
    assert any(dict(c.attributes or {}).get("db.system.name") == "sqlite" for c in children), [
        (c.name, dict(c.attributes or {})) for c in children
    ]
    assert all("41" not in str(dict(c.attributes or {})) for c in children)


@pytest.mark.redis
def test_redis_commands_are_spans_without_values(
    spans: InMemorySpanExporter, redis_url: str, db: None
) -> None:
    import redis
    from django.http import HttpRequest, JsonResponse
    from django.urls import path

    client = redis.Redis.from_url(redis_url)

    def redis_view(request: HttpRequest) -> JsonResponse:
        client.set("otel-django-test:key", "canary-redis-value-7731")
        return JsonResponse({"value": client.get("otel-django-test:key").decode()})

    urlconf = type("urls", (), {"urlpatterns": [path("r/", redis_view)]})
    spans.clear()
    with override_settings(ROOT_URLCONF=urlconf):
        assert Client().get("/r/").status_code == 200
    finished = list(spans.get_finished_spans())
    server = server_span(finished)
    commands = children_of(server, finished)
    assert [c.name for c in commands] == ["SET", "GET"]
    assert all(c.kind is SpanKind.CLIENT for c in commands)
    assert all(dict(c.attributes or {}).get("db.system.name") == "redis" for c in commands), [
        dict(c.attributes or {}) for c in commands
    ]
    assert "canary-redis-value-7731" not in str([dict(c.attributes or {}) for c in commands])


def test_async_view_queries_stay_in_the_request_trace(
    spans: InMemorySpanExporter, transactional_db: None
) -> None:
    import asyncio

    from django.test import AsyncClient

    Product.objects.create(name="lamp", price_cents=1, category=Category.objects.create(name="x"))
    spans.clear()
    response = asyncio.run(AsyncClient().get("/async/"))
    assert response.status_code == 200
    finished = list(spans.get_finished_spans())
    server = server_span(finished)
    assert server.name == "GET async/"
    assert [q.name for q in children_of(server, finished)] == ["SELECT shop_product"]


def test_baggage_alone_is_propagated(spans: InMemorySpanExporter, db: None) -> None:
    from django.http import HttpRequest, JsonResponse
    from django.urls import path
    from opentelemetry import baggage

    def baggage_view(request: HttpRequest) -> JsonResponse:
        return JsonResponse({"tenant": baggage.get_baggage("tenant")})

    urlconf = type("urls", (), {"urlpatterns": [path("b/", baggage_view)]})
    with override_settings(ROOT_URLCONF=urlconf):
        assert Client().get("/b/", HTTP_BAGGAGE="tenant=acme").json() == {"tenant": "acme"}


@pytest.mark.parametrize(
    ("sampler", "arg", "sampled_parent", "expected"),
    [
        ("parentbased_traceidratio", 0.0, None, False),
        ("parentbased_traceidratio", 1.0, None, True),
        ("parentbased_traceidratio", 0.0, True, True),  # the caller's decision wins
        ("traceidratio", 0.0, True, False),
        ("parentbased_always_off", 1.0, None, False),
        ("always_on", 0.0, False, True),
    ],
)
def test_sampler_follows_the_standard_settings(
    sampler: str, arg: float, sampled_parent: bool | None, expected: bool
) -> None:
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    from otel_django.config import load_config
    from otel_django.traces.provider import build_sampler

    config = load_config({"OTEL_TRACES_SAMPLER": sampler, "OTEL_TRACES_SAMPLER_ARG": str(arg)}, {})
    parent = None
    if sampled_parent is not None:
        flags = TraceFlags(TraceFlags.SAMPLED if sampled_parent else TraceFlags.DEFAULT)
        parent_span = NonRecordingSpan(SpanContext(1, 2, is_remote=True, trace_flags=flags))
        parent = trace.set_span_in_context(parent_span)
    result = build_sampler(config).should_sample(parent, 12345, "GET")
    assert result.decision.is_sampled() is expected


@pytest.mark.django_db
def test_database_error_in_a_view_records_no_values(spans: InMemorySpanExporter) -> None:
    from django.http import HttpRequest, JsonResponse
    from django.urls import path

    def failing_view(request: HttpRequest) -> JsonResponse:
        with connections["default"].cursor() as cursor:
            value = request.GET["q"]
            cursor.execute(f"SELECT * FROM no_such_table_4471 WHERE x = '{value}'")
        return JsonResponse({})

    urlconf = type("urls", (), {"urlpatterns": [path("f/", failing_view)]})
    spans.clear()
    with override_settings(ROOT_URLCONF=urlconf):
        client = Client(raise_request_exception=False)
        assert client.get("/f/", {"q": "secret-literal"}).status_code == 500
    finished = list(spans.get_finished_spans())
    server = server_span(finished)
    (event,) = server.events
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "django.db.utils.OperationalError"
    assert "failing_view" in str(event.attributes["exception.stacktrace"])
    # The query string is recorded as sent (q is not a sensitive key); the error is not.
    recorded = [[e.attributes for e in s.events] for s in finished]
    assert [r for r in recorded if "secret-literal" in str(r)] == []


def test_a_failing_telemetry_step_never_fails_the_request(
    spans: InMemorySpanExporter, db: None
) -> None:
    import structlog
    from django.test import RequestFactory
    from django.urls import resolve
    from opentelemetry import metrics

    from otel_django import runtime
    from otel_django.metrics.http import HttpServerMetrics
    from otel_django.middleware import OtelDjangoMiddleware

    def view(request: Any) -> Any:
        match = resolve(request.path_info)
        return match.func(request, *match.args, **match.kwargs)

    failed: list[str] = []
    for stage in ("request_started", "request_finished"):

        class Broken(HttpServerMetrics):
            pass

        def broken(*args: object, stage: str = stage, **kwargs: object) -> None:
            failed.append(stage)
            raise RuntimeError("metrics backend exploded")

        setattr(Broken, stage, broken)
        http_metrics = Broken(metrics.get_meter("tests"), "tests", runtime.current())
        middleware = OtelDjangoMiddleware(view, http_metrics=http_metrics)
        response = middleware(RequestFactory().get("/products/", HTTP_X_REQUEST_ID="survivor-1"))
        assert response.status_code == 200
        assert failed[-1:] == [stage]  # the step did fail
        # Nothing of the failed request stays bound to the thread.
        assert "request_id" not in structlog.contextvars.get_contextvars()
        from opentelemetry import trace

        assert not trace.get_current_span().get_span_context().is_valid


def _raising(exception: Exception) -> object:
    def view(request: object) -> object:
        raise exception

    return view


@pytest.mark.parametrize(
    ("exception", "status"),
    [
        (Http404("no such product"), 404),
        (PermissionDenied("not yours"), 403),
        (BadRequest("malformed"), 400),
        (SuspiciousOperation("tampered"), 400),
    ],
    ids=["Http404", "PermissionDenied", "BadRequest", "SuspiciousOperation"],
)
def test_exceptions_django_answers_with_4xx_are_not_errors(
    spans: InMemorySpanExporter, db: None, exception: Exception, status: int
) -> None:
    from django.http import HttpResponseNotFound
    from django.urls import path

    from tests.support.metrics import scrape, series

    urlconf = type(
        "urls",
        (),
        {
            "urlpatterns": [
                path("raises/", _raising(exception)),
                path("returns/", lambda request: HttpResponseNotFound("no such product")),
                path("", include("otel_django.urls")),
            ]
        },
    )
    spans.clear()
    with override_settings(ROOT_URLCONF=urlconf):
        assert Client().get("/raises/").status_code == status
        assert Client().get("/returns/").status_code == 404
        exposition = scrape()
    raised, returned = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    for span, code in ((raised, status), (returned, 404)):
        assert span.attributes is not None
        assert span.attributes["http.response.status_code"] == code
        assert "error.type" not in span.attributes
        assert span.events == ()
        assert span.status.status_code is StatusCode.UNSET
    requests = series(exposition, "http_server_request_duration_seconds_count")
    assert [r for r in requests if r.get("http_route") in ("raises/", "returns/")]
    assert not [r for r in requests if r.get("http_route") == "raises/" and "error_type" in r]


def test_other_exceptions_of_a_view_stay_errors(spans: InMemorySpanExporter, db: None) -> None:
    from django.urls import path

    urlconf = type("urls", (), {"urlpatterns": [path("raises/", _raising(KeyError("k")))]})
    spans.clear()
    with override_settings(ROOT_URLCONF=urlconf):
        assert Client(raise_request_exception=False).get("/raises/").status_code == 500
    server = server_span(list(spans.get_finished_spans()))
    assert server.attributes is not None and server.attributes["error.type"] == "KeyError"
    assert [e.name for e in server.events] == ["exception"]
    assert server.status.status_code is StatusCode.ERROR
