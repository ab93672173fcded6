"""The OpenTelemetry contract, against real server processes and receivers that decode the real
protobuf (OTLP/HTTP on custom paths, OTLP/gRPC with the real collector services).

Each case runs both ways in: ``"otel_django"`` in ``INSTALLED_APPS`` (runserver), and the
``opentelemetry-instrument`` wrapper with otel_django not installed as an app. Cases group
the rows of issue 11 per server process, to keep the wall time down:

* signal endpoints, headers, resource precedence, batch size, OTLP metrics push = /metrics;
* gRPC for all three signals, ``OTEL_SERVICE_NAME`` over ``OTEL_RESOURCE_ATTRIBUTES``;
* the exporter timeout; exporter lists and spec-valid values otel_django cannot serve;
* upstream's Django options: header capture and sanitising, traced request attributes,
  hooks (one raising), exclusions (the user's, and otel_django's views under prefixes),
  disabled instrumentations;
* ``OTEL_SDK_DISABLED``; one span per query with the sqlite3 and psycopg DB-API
  instrumentations installed, and no root spans outside requests; every gunicorn worker
  pushing under its own ``service.instance.id``.
"""

from __future__ import annotations

import concurrent.futures
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from otel_django.metrics.naming import metric_name
from tests.support.auth import authorization
from tests.support.otlp_receiver import OTLPGrpcReceiver, OTLPReceiver
from tests.support.servers import BIN, DEMO, Server, copy_database, demo_env, gunicorn, runserver
from tests.support.services import REDIS_URL, free_port
from tests.support.spans import server_spans

pytestmark = pytest.mark.slow

WAYS = [pytest.param(False, id="installed-app"), pytest.param(True, id="wrapper")]
AUTH = authorization("demo-metrics-password")
SETTINGS = "tests.contract.server_settings"


def contract_env(
    seeded: Path,
    tmp_path: Path,
    wrapper: bool,
    settings: Mapping[str, Any] | None = None,
    **extra: str,
) -> dict[str, str]:
    env = demo_env(
        copy_database(seeded, tmp_path),
        DJANGO_SETTINGS_MODULE=SETTINGS,
        DEMO_WITHOUT_OTEL_APP="1" if wrapper else "",
        OTEL_BSP_SCHEDULE_DELAY="100",
        OTEL_BLRP_SCHEDULE_DELAY="100",
        **extra,
    )
    if settings:
        env["CONTRACT_OTEL_DJANGO"] = json.dumps(settings)
    return env


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """``serve(env, wrapper)``: a runserver process, stopped (and flushed) at the end."""
    started: list[Server] = []

    def start(env: dict[str, str], wrapper: bool) -> Server:
        server = runserver(free_port(), env, tmp_path / f"logs{len(started)}", instrument=wrapper)
        started.append(server)
        server.wait_ready("/ops/healthz", timeout=60)
        return server

    yield start
    for server in started:
        server.stop()


def warnings_about(output: str, text: str) -> list[str]:
    return [line for line in output.splitlines() if text in line]


def scrape_families(server: Server, path: str = "/ops/metrics") -> set[str]:
    status, _, body = server.get(path, AUTH)
    assert status == 200, body[:300]
    return set(re.findall(r"^# TYPE (\S+) ", body.decode(), re.MULTILINE)) - {"target_info"}


def pushed_families(receiver: OTLPReceiver) -> set[str]:
    """The Prometheus family names of the metrics in the latest push."""
    with receiver._cond:
        latest = receiver.metric_requests[-1:] if receiver.metric_requests else []
    names = set()
    for request in latest:
        for resource_metrics in request.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    kind = metric.WhichOneof("data")
                    counter = kind == "sum" and metric.sum.is_monotonic
                    names.add(metric_name(metric.name, metric.unit, counter))
    return names


def request_count(receiver: OTLPReceiver, route: str | None = None) -> int:
    """``http.server.request.duration`` count of the latest push of each process."""
    latest: dict[str, int] = {}
    for point in receiver.metric_points("http.server.request.duration"):
        if route is None or point.attributes.get("http.route") == route:
            key = f"{point.resource['service.instance.id']}|{sorted(point.attributes.items())}"
            latest[key] = point.count or 0
    return sum(latest.values())


# -- signal endpoints, headers, resource, batch size, metrics push ----------------------------


@pytest.mark.parametrize("wrapper", WAYS)
def test_signal_endpoints_headers_resource_batches_and_metrics_push(
    seeded: Path, tmp_path: Path, serve: Any, wrapper: bool
) -> None:
    paths = {"/custom/traces": "traces", "/custom/logs": "logs", "/custom/metrics": "metrics"}
    receiver = OTLPReceiver(paths=paths).start()
    try:
        env = contract_env(
            seeded,
            tmp_path,
            wrapper,
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}",  # never used
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.endpoint + "/custom/traces",
            OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=receiver.endpoint + "/custom/logs",
            OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=receiver.endpoint + "/custom/metrics",
            OTEL_EXPORTER_OTLP_HEADERS="x-tenant=acme,x-shared=generic",
            OTEL_EXPORTER_OTLP_TRACES_HEADERS="x-tenant=traces-tenant",
            OTEL_LOGS_EXPORTER="otlp",
            OTEL_METRICS_EXPORTER="otlp,prometheus",
            OTEL_METRIC_EXPORT_INTERVAL="300",
            OTEL_BSP_MAX_EXPORT_BATCH_SIZE="1",
            OTEL_RESOURCE_ATTRIBUTES="service.name=from-resource-attributes,team=contract",
            OTEL_DJANGO_LOG_LEVEL="info",
        )
        server = serve(env, wrapper)
        for _ in range(5):
            assert server.get("/products/")[0] == 200
        assert server.get("/cached/")[0] == 200
        scraped = scrape_families(server)
        assert receiver.wait_for(lambda r: request_count(r, "products/") == 5, timeout=30)
        assert receiver.wait_for(lambda r: scraped <= pushed_families(r), timeout=30), (
            scraped - pushed_families(receiver)
        )
        assert receiver.wait_for(lambda r: len(server_spans(r)) >= 6 and len(r.logs) >= 6)
    finally:
        receiver.stop()
    assert set(receiver.paths_seen) == set(paths)
    headers = {path: [h for p, h, _ in receiver.exports if p == path] for path in paths}
    assert all(h["x-tenant"] == "traces-tenant" for h in headers["/custom/traces"])
    assert all("x-shared" not in h for h in headers["/custom/traces"])  # replaced, not merged
    for path in ("/custom/logs", "/custom/metrics"):
        assert all((h["x-tenant"], h["x-shared"]) == ("acme", "generic") for h in headers[path])
    assert set(receiver.spans_per_export("/custom/traces")) == {1}  # OTEL_BSP_MAX_EXPORT_BATCH_SIZE
    span = server_spans(receiver)[0]
    assert span.resource["service.name"] == "from-resource-attributes"  # over OTEL_DJANGO's
    assert span.resource["team"] == "contract"
    assert span.resource["telemetry.distro.name"] == "otel_django"
    points = receiver.metric_points("http.server.request.duration")
    assert points and all(p.unit == "s" and p.kind == "histogram" for p in points)
    assert {"http.request.method", "url.scheme", "http.response.status_code", "http.route"} <= set(
        points[-1].attributes
    )
    assert receiver.metric_points("db.client.operation.duration")
    assert any(log.body == "request" and log.trace_id for log in receiver.logs)


@pytest.mark.parametrize("wrapper", WAYS)
def test_grpc_for_every_signal_and_service_name_over_resource_attributes(
    seeded: Path, tmp_path: Path, serve: Any, wrapper: bool
) -> None:
    receiver = OTLPGrpcReceiver().start()
    try:
        env = contract_env(
            seeded,
            tmp_path,
            wrapper,
            OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_EXPORTER_OTLP_HEADERS="x-tenant=grpc-tenant",
            OTEL_LOGS_EXPORTER="otlp",
            OTEL_METRICS_EXPORTER="otlp",
            OTEL_METRIC_EXPORT_INTERVAL="300",
            OTEL_SERVICE_NAME="from-service-name",
            OTEL_RESOURCE_ATTRIBUTES="service.name=from-resource-attributes",
            OTEL_DJANGO_LOG_LEVEL="info",
        )
        server = serve(env, wrapper)
        for _ in range(3):
            assert server.get("/products/2/")[0] == 200
        assert server.get("/ops/metrics", AUTH)[0] == 404  # prometheus is not in the list
        assert receiver.wait_for(lambda r: request_count(r, "products/<int:pk>/") == 3, timeout=30)
        assert receiver.wait_for(lambda r: len(server_spans(r)) == 3 and len(r.logs) >= 3)
    finally:
        receiver.stop()
    assert {p for p, _, _ in receiver.exports} == {"grpc:traces", "grpc:metrics", "grpc:logs"}
    assert all(h.get("x-tenant") == "grpc-tenant" for _, h, _ in receiver.exports)
    assert {s.resource["service.name"] for s in receiver.spans} == {"from-service-name"}
    output = Path(server.stderr_path).read_text() + Path(server.stdout_path).read_text()
    assert "grpc extra" not in output  # installed here: no fallback


def test_grpc_without_the_extra_is_one_warning_and_http() -> None:
    import logging

    from otel_django import export
    from otel_django.export import Notes, choose

    classes = {
        **export.OTLP_CLASSES,
        ("traces", "otlp_proto_grpc"): "no_such_grpc_package_4471.trace_exporter:X",
        ("logs", "otlp_proto_grpc"): "no_such_grpc_package_4471.log_exporter:X",
    }
    warned: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno == logging.WARNING:
                warned.append(record.getMessage())

    collect = Collect()
    export.logger.addHandler(collect)
    try:
        notes = Notes()
        environ = {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
        (traces,) = choose("traces", ["otlp"], environ, notes, otlp_classes=classes)
        (logs,) = choose("logs", ["otlp"], environ, notes, otlp_classes=classes)
    finally:
        export.logger.removeHandler(collect)
    assert traces.factory.__module__ == "opentelemetry.exporter.otlp.proto.http.trace_exporter"
    assert logs.factory.__module__ == "opentelemetry.exporter.otlp.proto.http._log_exporter"
    assert len(warned) == 1 and "otel_django[grpc]" in warned[0]


# -- timeout, exporter lists, values otel_django cannot serve ---------------------------------


@pytest.mark.parametrize("wrapper", WAYS)
def test_the_exporter_timeout_comes_from_the_environment(
    seeded: Path, tmp_path: Path, serve: Any, wrapper: bool
) -> None:
    receiver = OTLPReceiver(delay_s=4.0).start()  # answers after the 1 s timeout
    try:
        env = contract_env(
            seeded,
            tmp_path,
            wrapper,
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_EXPORTER_OTLP_TIMEOUT="1",
        )
        server = serve(env, wrapper)
        deadline = time.monotonic() + 40
        statuses = []
        while "span export to" not in server.stdout() + server.stderr():
            assert time.monotonic() < deadline, "the exporter waited past its timeout"
            statuses.append(server.get("/products/")[0])
            time.sleep(0.2)
        assert set(statuses) == {200}
        assert receiver.wait_for(lambda r: r.requests >= 1)  # tried: answered after it gave up
    finally:
        receiver.stop()
    output = server.stdout() + server.stderr()
    assert len(warnings_about(output, "span export to")) == 1


@pytest.mark.parametrize("wrapper", WAYS)
def test_exporter_lists_and_values_otel_django_cannot_serve_never_stop_startup(
    otlp_receiver: OTLPReceiver, seeded: Path, tmp_path: Path, serve: Any, wrapper: bool
) -> None:
    env = contract_env(
        seeded,
        tmp_path,
        wrapper,
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
        OTEL_TRACES_EXPORTER="otlp,console",
        OTEL_LOGS_EXPORTER="console",
        OTEL_METRICS_EXPORTER="prometheus,no_such_exporter",
        OTEL_TRACES_SAMPLER="no_such_sampler",
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/json",
    )
    server = serve(env, wrapper)
    status = server.get("/products/2/", {"X-Request-ID": "lists-1"})[0]
    assert status == 200
    assert server.get("/ops/metrics", AUTH)[0] == 200
    assert otlp_receiver.wait_for(lambda r: len(server_spans(r)) == 1)
    server.stop()
    output = server.stdout() + server.stderr()
    assert re.search(r"trace [0-9a-f]{32}\n  GET products/<int:pk>/ \[server\]", server.stderr())
    for variable in (
        "OTEL_TRACES_SAMPLER",
        "OTEL_METRICS_EXPORTER",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    ):
        assert len(warnings_about(output, variable)) == 1, (variable, output[-3000:])
    assert "Traceback" not in output


# -- upstream Django instrumentation's options ------------------------------------------------


@pytest.mark.redis
@pytest.mark.parametrize("wrapper", WAYS)
def test_upstream_django_options_hooks_and_exclusions(
    otlp_receiver: OTLPReceiver, seeded: Path, tmp_path: Path, serve: Any, wrapper: bool
) -> None:
    from opentelemetry.util.http import (
        normalise_request_header_name,
        normalise_response_header_name,
    )

    env = contract_env(
        seeded,
        tmp_path,
        wrapper,
        settings={
            "REQUEST_HOOK": "tests.contract.hooks.request_hook",
            "RESPONSE_HOOK": "tests.contract.hooks.raising_hook",
        },
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST="x-tenant,x-secret-.*",
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE="content-type",
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS="x-secret-.*",
        OTEL_PYTHON_DJANGO_TRACED_REQUEST_ATTRS="path_info,content_type",
        OTEL_PYTHON_EXCLUDED_URLS="products/3",
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="redis",
        REDIS_URL=REDIS_URL,
    )
    server = serve(env, wrapper)
    sent = {"X-Tenant": "acme", "X-Secret-Token": "s3cr3t-4471"}
    for _ in range(2):
        assert server.get("/products/2/", sent)[0] == 200
    assert server.get("/products/3/")[0] == 200
    assert server.get("/redis/", {"X-Request-ID": "no-redis-spans"})[0] == 200
    for path in ("/ops/healthz", "/ops/readyz", "/internal/live"):
        assert server.get(path)[0] == 200
    assert server.get("/internal/metrics", AUTH)[0] == 200
    status, _, body = server.get("/ops/metrics", AUTH)
    assert status == 200
    assert otlp_receiver.wait_for(lambda r: len(server_spans(r)) >= 3)
    time.sleep(0.5)  # anything else would have arrived by now
    server.stop()
    spans = server_spans(otlp_receiver)
    assert sorted(s.attributes["url.path"] for s in spans) == [
        "/products/2/",
        "/products/2/",
        "/redis/",
    ]  # neither the user's exclusion nor otel_django's views, under either prefix
    product = next(s for s in spans if s.attributes["url.path"] == "/products/2/")
    attributes = product.attributes
    assert attributes[normalise_request_header_name("X-Tenant")] == ["acme"]
    assert attributes[normalise_request_header_name("X-Secret-Token")] == ["[REDACTED]"]
    assert attributes[normalise_response_header_name("Content-Type")] == ["application/json"]
    assert attributes["path_info"] == "/products/2/"
    assert attributes["test.request_hook"] == "/products/2/"
    redis_trace = otlp_receiver.trace(next(s for s in spans if s.name == "GET redis/").trace_id)
    assert not [s for s in redis_trace if s.attributes.get("db.system.name") == "redis"]
    text = body.decode()
    assert 'http_route="products/<int:pk>/"' in text
    counts = re.findall(r"http_server_request_duration_seconds_count\{([^}]*)\} (\d+)", text)
    assert sum(int(n) for _, n in counts) == 3  # 2 products + redis; nothing else counted
    output = server.stdout() + server.stderr()
    assert len(warnings_about(output, "response_hook raised")) == 1
    assert "s3cr3t-4471" not in output + str([s.attributes for s in otlp_receiver.spans])


@pytest.mark.redis
@pytest.mark.parametrize("wrapper", WAYS)
def test_sdk_disabled_runs_as_if_otel_django_were_absent(
    otlp_receiver: OTLPReceiver, seeded: Path, tmp_path: Path, serve: Any, wrapper: bool
) -> None:
    env = contract_env(
        seeded,
        tmp_path,
        wrapper,
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
        OTEL_SDK_DISABLED="true",
        OTEL_DJANGO_LOG_LEVEL="info",
        REDIS_URL=REDIS_URL,
    )
    server = serve(env, wrapper)
    status, headers, _ = server.get("/products/2/")
    assert status == 200 and "X-Request-ID" not in headers  # no middleware
    assert server.get("/redis/")[0] == 200
    assert server.get("/ops/metrics", AUTH)[0] == 404
    server.stop()
    assert otlp_receiver.requests == 0
    assert '"logger":"otel_django.access"' not in server.stdout()


# -- DB-API instrumentations installed: one span per query ------------------------------------


SHELL = (
    "from shop.models import Product; import sqlite3\n"
    "assert Product.objects.count() > 0\n"
    "sqlite3.connect(':memory:').cursor().execute('SELECT 4471')\n"
)


@pytest.mark.parametrize("wrapper", WAYS)
def test_one_span_per_orm_query_and_none_outside_requests_with_dbapi_instrumentations(
    otlp_receiver: OTLPReceiver, seeded: Path, tmp_path: Path, serve: Any, wrapper: bool
) -> None:
    assert _installed("opentelemetry-instrumentation-sqlite3")
    env = contract_env(
        seeded, tmp_path, wrapper, OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint
    )
    server = serve(env, wrapper)
    assert server.get("/n-plus-one/", {"X-Request-ID": "dbapi-1"})[0] == 200
    server.stop()
    (server_span,) = server_spans(otlp_receiver)
    queries = [s for s in otlp_receiver.trace(server_span.trace_id) if s.kind == "CLIENT"]
    assert len(queries) >= 5
    assert {s.scope for s in queries} == {"otel_django.db"}
    assert all(s.parent_span_id == server_span.span_id for s in queries)
    assert [
        s for s in otlp_receiver.spans if s.scope.startswith("opentelemetry.instrumentation")
    ] == []

    # Outside any request: the ORM query makes no span; a raw sqlite3 query shows that the
    # DB-API instrumentation is active in this process.
    otlp_receiver.clear()
    command = [sys.executable, "manage.py", "shell", "-c", SHELL]
    if wrapper:
        command = [str(BIN / "opentelemetry-instrument"), *command]
    result = subprocess.run(command, cwd=DEMO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert otlp_receiver.wait_for(lambda r: len(r.spans) >= 1)
    time.sleep(0.3)
    (raw,) = otlp_receiver.spans
    assert raw.scope == "opentelemetry.instrumentation.sqlite3" and raw.parent_span_id == ""


@pytest.mark.postgres
@pytest.mark.parametrize("wrapper", WAYS)
def test_one_span_per_orm_query_on_postgresql_with_psycopg_instrumentation(
    otlp_receiver: OTLPReceiver,
    seeded: Path,
    tmp_path: Path,
    serve: Any,
    wrapper: bool,
    contract_pg: str,
) -> None:
    assert _installed("opentelemetry-instrumentation-psycopg")
    env = contract_env(
        seeded,
        tmp_path,
        wrapper,
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
        CONTRACT_POSTGRES_DB=contract_pg,
    )
    server = serve(env, wrapper)
    assert server.get("/products/")[0] == 200
    assert server.get("/ops/readyz")[0] == 200  # its queries run outside any request
    server.stop()
    (server_span,) = server_spans(otlp_receiver)
    queries = [s for s in otlp_receiver.spans if s.kind == "CLIENT"]
    assert queries and {s.scope for s in queries} == {"otel_django.db"}
    assert {s.attributes["db.system.name"] for s in queries} == {"postgresql"}
    assert all(s.parent_span_id == server_span.span_id for s in queries)  # no root spans


@pytest.fixture
def contract_pg(postgres_dsn: str) -> Iterator[str]:
    """A migrated PostgreSQL database of the demo, for the server; dropped afterwards."""
    import os

    import psycopg

    name = os.environ.get("OTEL_DJANGO_TEST_DB", "test_otel_django") + "_contract"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    env = demo_env(Path("/nonexistent"), DJANGO_SETTINGS_MODULE=SETTINGS, CONTRACT_POSTGRES_DB=name)
    env["OTEL_DJANGO_LOGGING_ENABLED"] = "false"
    env["OTEL_TRACES_EXPORTER"] = "none"
    for command in (["migrate", "--no-input"], ["seed_demo"]):
        subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=DEMO,
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
    try:
        yield name
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _installed(distribution: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return bool(version(distribution))
    except PackageNotFoundError:
        return False


# -- every gunicorn worker pushes under its own service.instance.id ---------------------------


@pytest.mark.parametrize("wrapper", WAYS)
def test_every_gunicorn_worker_pushes_its_metrics(
    otlp_receiver: OTLPReceiver, seeded: Path, tmp_path: Path, wrapper: bool
) -> None:
    env = contract_env(
        seeded,
        tmp_path,
        wrapper,
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
        OTEL_METRICS_EXPORTER="otlp",
        OTEL_METRIC_EXPORT_INTERVAL="300",
        OTEL_TRACES_EXPORTER="none",
    )
    server = gunicorn(free_port(), env, tmp_path / "logs", workers=2, instrument=wrapper)
    try:
        server.wait_ready("/ops/healthz", timeout=60)
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(lambda _: server.get("/slow/")[0], range(6)))
        assert statuses == [200] * 6
        assert otlp_receiver.wait_for(lambda r: request_count(r, "slow/") == 6, timeout=30)
        assert otlp_receiver.wait_for(
            lambda r: len({p.resource["service.instance.id"] for p in r.metric_points()}) == 2
        )
    finally:
        server.stop()
    pids = {p.resource["process.pid"] for p in otlp_receiver.metric_points()}
    assert len(pids) == 2
