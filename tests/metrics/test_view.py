"""The /metrics view: formats, compression, names, and what it must not count.

Proves: the default answer is Prometheus text 0.0.4 that prometheus_client's parser and
``promtool check metrics`` accept; ``Accept: application/openmetrics-text`` gets OpenMetrics
1.0 (ending in ``# EOF``, accepted by the OpenMetrics parser); ``Accept-Encoding: gzip``
gets gzip; the view works behind Django 5.1+ ``LoginRequiredMiddleware``; scraping it makes
no span and no HTTP metric; the names other parts of the project rely on are there, with no
``otel_scope_*`` label; unknown methods become ``_OTHER`` and unmatched paths carry no
``http_route``; non-GET methods get 405.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
from collections.abc import Callable

import pytest
from django.test import Client, override_settings
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from otel_django.config import Config
from tests.support.auth import basic
from tests.support.metrics import scrape, series, total
from tests.support.services import IN_CI

pytestmark = pytest.mark.django_db

EXPECTED = {
    "http_server_request_duration_seconds_bucket",
    "http_server_request_duration_seconds_count",
    "http_server_request_duration_seconds_sum",
    "http_server_active_requests",
    "http_server_request_body_size_bytes_count",
    "http_server_response_body_size_bytes_count",
    "db_client_operation_duration_seconds_count",
    "otel_django_cache_requests_total",
    "otel_django_db_migrations_unapplied",
    "process_cpu_time_seconds_total",
    "process_memory_usage_bytes",
    "process_thread_count",
    "cpython_gc_collections_total",
    "target_info",
}


def traffic(client: Client) -> None:
    assert client.get("/products/").status_code == 200
    assert client.get("/products/1/").status_code in (200, 404)
    assert client.get("/cached/").status_code == 200
    assert client.post("/products/", data=b"x" * 300, content_type="application/json").status_code
    assert client.get("/no-such-page/").status_code == 404


@pytest.mark.smoke
def test_text_format_parses_and_has_the_names() -> None:
    client = Client()
    traffic(client)
    response = client.get("/metrics", HTTP_AUTHORIZATION=basic())
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert response["Cache-Control"].startswith("max-age=0")
    text = response.content.decode()
    families = list(parse_text(text))
    names = {s.name for f in families for s in f.samples}
    assert names >= EXPECTED, EXPECTED - names
    assert "otel_scope_name" not in text
    assert "db_client_connections_usage" not in text  # deprecated duplicate dropped
    kinds = {f.name: f.type for f in families}
    assert kinds["http_server_request_duration_seconds"] == "histogram"
    assert kinds["otel_django_cache_requests"] == "counter"
    assert kinds["http_server_active_requests"] == "gauge"
    routes = {
        labels.get("http_route")
        for labels in series(text, "http_server_request_duration_seconds_count")
    }
    assert {"products/", "products/<int:pk>/", "cached/"} <= routes
    assert not any(r and "no-such-page" in r for r in routes)
    for labels in series(text, "http_server_request_duration_seconds_count"):
        assert set(labels) <= {
            "http_request_method",
            "http_route",
            "http_response_status_code",
            "url_scheme",
            "error_type",
            "otel_metric_overflow",
        }


def test_promtool_accepts_the_text_format() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if IN_CI:
            pytest.fail(
                "promtool is not installed; CI must provide it (apt-get install prometheus)"
            )
        pytest.skip("promtool is not installed")
    Client().get("/products/")
    text = scrape()
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    # promtool exits 3 for style hints ("lint") only; 1 means the exposition did not parse.
    assert result.returncode in (0, 3), result.stdout + result.stderr
    assert "error while linting" not in result.stdout + result.stderr


@pytest.mark.smoke
def test_openmetrics_when_asked() -> None:
    Client().get("/products/")
    accept = (
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
        "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    )  # Prometheus 2.42
    response = Client().get("/metrics", HTTP_AUTHORIZATION=basic(), HTTP_ACCEPT=accept)
    assert response["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    text = response.content.decode()
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in parse_openmetrics(text)}
    assert families["otel_django_cache_requests"].type == "counter"
    assert families["target"].type == "info"
    assert families["http_server_request_duration_seconds"].type == "histogram"
    plain = Client().get("/metrics", HTTP_AUTHORIZATION=basic(), HTTP_ACCEPT="text/plain")
    assert plain["Content-Type"].startswith("text/plain")


def test_quality_values_decide_the_format() -> None:
    for accept in (
        "application/openmetrics-text;q=0,text/plain",
        "application/openmetrics-text;version=1.0.0;q=0.1,text/plain;q=1",
    ):
        response = Client().get("/metrics", HTTP_AUTHORIZATION=basic(), HTTP_ACCEPT=accept)
        assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8", accept
        assert not response.content.decode().endswith("# EOF\n")


def test_gzip_when_asked() -> None:
    response = Client().get(
        "/metrics", HTTP_AUTHORIZATION=basic(), HTTP_ACCEPT_ENCODING="gzip, deflate"
    )
    assert response["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in response["Vary"]
    text = gzip.decompress(response.content).decode()
    assert "# TYPE http_server_request_duration_seconds histogram" in text
    identity = Client().get("/metrics", HTTP_AUTHORIZATION=basic(), HTTP_ACCEPT_ENCODING="gzip;q=0")
    assert not identity.has_header("Content-Encoding")


def test_works_behind_login_required_middleware() -> None:
    from django.conf import settings

    middleware = [*settings.MIDDLEWARE, "django.contrib.auth.middleware.LoginRequiredMiddleware"]
    with override_settings(MIDDLEWARE=middleware, LOGIN_URL="/login/"):
        client = Client()
        assert client.get("/products/").status_code == 302  # the middleware is active
        assert client.get("/metrics", HTTP_AUTHORIZATION=basic()).status_code == 200
        assert client.get("/metrics").status_code == 401


def test_scrapes_are_not_counted_nor_traced(spans: InMemorySpanExporter) -> None:
    client = Client()
    before = scrape(client)
    for _ in range(3):
        scrape(client)
    after = scrape(client)
    name = "http_server_request_duration_seconds_count"
    assert total(after, name) == total(before, name)
    assert not any(labels.get("http_route") == "metrics" for labels in series(after, name))
    assert not [s for s in spans.get_finished_spans() if s.kind.name == "SERVER"]


def test_unknown_methods_and_unmatched_paths() -> None:
    client = Client()
    client.generic("BREW", "/products/")
    client.generic("GET", "/does/not/exist/12345/")
    text = scrape(client)
    name = "http_server_request_duration_seconds_count"
    methods = {labels["http_request_method"] for labels in series(text, name)}
    assert "_OTHER" in methods and "BREW" not in methods
    assert "12345" not in text


def test_only_get_and_head() -> None:
    client = Client()
    assert client.post("/metrics", HTTP_AUTHORIZATION=basic()).status_code == 405
    assert client.head("/metrics", HTTP_AUTHORIZATION=basic()).status_code == 200


def test_metrics_disabled_is_404(override_config: Callable[..., Config]) -> None:
    override_config(metrics_enabled=False)
    assert Client().get("/metrics", HTTP_AUTHORIZATION=basic()).status_code == 404
