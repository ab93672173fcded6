"""Spans over the wire: the demo as a real server, its spans decoded by an OTLP receiver.

Both ways in (``opentelemetry-instrument`` and ``INSTALLED_APPS``), pre-fork gunicorn workers
with and without ``--preload``, SIGTERM, and a Collector that is not there.
"""

from __future__ import annotations

import concurrent.futures
import re
import signal
import time
from pathlib import Path

import pytest

from tests.support.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.support.servers import copy_database, demo_env, gunicorn, runserver
from tests.support.services import REDIS_URL, free_port

pytestmark = pytest.mark.slow


def one_trace(receiver: OTLPReceiver, request_id: str) -> list[ReceivedSpan]:
    assert receiver.wait_for(
        lambda r: any(s.attributes.get("otel_django.request_id") == request_id for s in r.spans)
    )
    server = next(
        s for s in receiver.spans if s.attributes.get("otel_django.request_id") == request_id
    )
    return receiver.trace(server.trace_id)


def assert_request_trace(spans: list[ReceivedSpan], route: str) -> ReceivedSpan:
    servers = [s for s in spans if s.kind == "SERVER"]
    assert len(servers) == 1
    server = servers[0]
    assert server.name == f"GET {route}"
    assert server.attributes["http.route"] == route
    assert server.parent_span_id == ""
    children = [s for s in spans if s.parent_span_id == server.span_id]
    assert children, "no child spans"
    assert all(s.kind == "CLIENT" for s in children)
    assert {s.trace_id for s in spans} == {server.trace_id}
    assert server.resource["service.name"] == "demo-shop"
    assert re.fullmatch(r"[0-9a-f-]{36}", server.resource["service.instance.id"])
    return server


@pytest.mark.smoke
@pytest.mark.redis
@pytest.mark.parametrize("app_installed", [True, False], ids=["with-app", "wrapper-only"])
def test_opentelemetry_instrument_exports_one_trace_per_request(
    otlp_receiver: OTLPReceiver, seeded: Path, tmp_path: Path, app_installed: bool
) -> None:
    env = demo_env(
        copy_database(seeded, tmp_path),
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="200",
        REDIS_URL=REDIS_URL,
        DEMO_WITHOUT_OTEL_APP="" if app_installed else "1",
    )
    server = runserver(free_port(), env, tmp_path / "logs", instrument=True)
    try:
        server.wait_ready()
        status, headers, _ = server.get("/redis/", {"X-Request-ID": "wrapper-redis-1"})
        assert status == 200
        assert headers["X-Request-ID"] == "wrapper-redis-1"
        status, _, _ = server.get("/products/3/", {"X-Request-ID": "wrapper-orm-1"})
        assert status == 200
        redis_trace = one_trace(otlp_receiver, "wrapper-redis-1")
        orm_trace = one_trace(otlp_receiver, "wrapper-orm-1")
    finally:
        server.stop()
    assert_request_trace(redis_trace, "redis/")
    (incr,) = [s for s in redis_trace if s.name == "INCRBY"]  # redis-py's incr()
    assert incr.attributes["db.system.name"] == "redis"
    assert incr.attributes.get("db.query.text", "INCRBY ? ?") == "INCRBY ? ?"
    assert_request_trace(orm_trace, "products/<int:pk>/")
    (query,) = [s for s in orm_trace if s.kind == "CLIENT"]
    assert query.name.startswith("SELECT shop_product")
    assert query.attributes["db.system.name"] == "sqlite"
    # The distro configured the process and skipped upstream's Django middleware.
    assert all(s.scope != "opentelemetry.instrumentation.django" for s in otlp_receiver.spans)
    assert orm_trace[0].resource["telemetry.distro.name"] == "otel_django"


@pytest.mark.smoke
@pytest.mark.parametrize("preload", [False, True], ids=["no-preload", "preload"])
def test_every_gunicorn_worker_exports_and_sigterm_loses_nothing(
    otlp_receiver: OTLPReceiver, seeded: Path, tmp_path: Path, preload: bool
) -> None:
    # A long batch delay: spans are still queued in the workers when SIGTERM arrives.
    env = demo_env(
        copy_database(seeded, tmp_path),
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="60000",
    )
    server = gunicorn(free_port(), env, tmp_path / "logs", workers=4, preload=preload)
    request_ids = [f"gunicorn-{preload}-{i}" for i in range(12)]
    try:
        server.wait_ready()
        # Slow requests in parallel: with 4 sync workers busy at once, every worker serves some.
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            results = list(
                pool.map(lambda rid: server.get("/slow/", {"X-Request-ID": rid}), request_ids)
            )
        assert [status for status, _, _ in results] == [200] * 12
    finally:
        assert server.stop(signal.SIGTERM) == 0
    assert otlp_receiver.wait_for(
        lambda r: {s.attributes.get("otel_django.request_id") for s in r.spans} >= set(request_ids),
        timeout=20,
    )
    servers = [s for s in otlp_receiver.spans if s.kind == "SERVER"]
    assert sorted(s.attributes["otel_django.request_id"] for s in servers) == sorted(request_ids)
    pids = {s.resource["process.pid"] for s in servers}
    instances = {s.resource["service.instance.id"] for s in servers}
    assert len(pids) == 4, pids
    assert len(instances) == 4, "each worker must have its own service.instance.id"
    for span in servers:
        assert any(c.parent_span_id == span.span_id for c in otlp_receiver.spans)


def test_app_keeps_serving_when_the_collector_is_down(seeded: Path, tmp_path: Path) -> None:
    closed_port = free_port()
    env = demo_env(
        copy_database(seeded, tmp_path),
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{closed_port}",
        OTEL_BSP_SCHEDULE_DELAY="50",
        OTEL_BSP_MAX_QUEUE_SIZE="64",
    )
    server = runserver(free_port(), env, tmp_path / "logs")
    statuses: list[int] = []
    try:
        server.wait_ready()
        # Keep serving until the exporter has given up on the first batch (its retries end at
        # the export timeout), then some more.
        deadline = time.monotonic() + 30
        while "span export to" not in server.stdout() + server.stderr():
            assert time.monotonic() < deadline, "no export warning"
            statuses += [server.get("/products/")[0] for _ in range(10)]
        statuses += [server.get("/products/")[0] for _ in range(100)]
    finally:
        server.stop()
    assert set(statuses) == {200}
    output = server.stderr() + server.stdout()
    assert output.count("span export to") == 1, output[-3000:]
    assert "Traceback" not in output


def test_console_exporter_prints_one_tree_per_request(seeded: Path, tmp_path: Path) -> None:
    env = demo_env(
        copy_database(seeded, tmp_path),
        OTEL_TRACES_EXPORTER="console",
        OTEL_BSP_SCHEDULE_DELAY="50",
    )
    server = runserver(free_port(), env, tmp_path / "logs")
    try:
        server.wait_ready()
        assert server.get("/products/2/")[0] == 200
    finally:
        server.stop()
    output = server.stderr()
    match = re.search(
        r"trace [0-9a-f]{32}\n  GET products/<int:pk>/ \[server\] [\d.]+ ms.*\n"
        r"    SELECT shop_product[\w ]* \[client\] [\d.]+ ms",
        output,
    )
    assert match, output[-3000:]
