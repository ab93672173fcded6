"""A secret in SQL never leaves the process: not in spans, log lines, metrics or Sentry events.

A real server (runserver, ``tests/db/server_settings.py``) exports spans and logs over OTLP to
the test receiver, sends Sentry events (real sentry-sdk, real HTTP transport) to the test's
Sentry receiver, prints JSON log lines and serves ``/metrics``. One request runs queries with
a canary value as a parameter and as a literal, fast and slow, with EXPLAIN switched on; another
runs an N+1 loop; two more fail on PostgreSQL with the canary, as a literal and as a parameter,
in the error's message. Then every byte both receivers got, every line the server printed and
the whole Prometheus exposition are searched for the canary and for SQL in label values.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from shop.models import Product

from tests.db.views import CANARY
from tests.support.auth import authorization
from tests.support.otlp_receiver import OTLPReceiver
from tests.support.sentry_receiver import SentryReceiver
from tests.support.servers import demo_env, runserver
from tests.support.services import free_port
from tests.support.shop import seed

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.django_db(databases=["default", "postgres"], transaction=True),
]

METRICS_PASSWORD = "canary-test-metrics-password"
SQL_IN_LABEL = re.compile(
    r"(?i)\b(select|insert|update|delete)\b.*\b(from|into|set|where)\b|%s|\?|=|\"|'"
)
EVENTS = ("slow_query", "n_plus_one")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
WITHHELD = "SQLSTATE 22P02 (message withheld)"
ERROR_REQUESTS = {"canary-3": "literal", "canary-4": "parameter"}


@pytest.fixture
def sentry_receiver() -> Iterator[SentryReceiver]:
    pytest.importorskip("sentry_sdk")
    receiver = SentryReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()


def test_canary_reaches_no_span_log_line_metric_or_sentry_event(
    otlp_receiver: OTLPReceiver, sentry_receiver: SentryReceiver, tmp_path: Path
) -> None:
    seed("postgres")
    Product.objects.using("postgres").create(
        name=CANARY, price_cents=1, category=Product.objects.using("postgres").first().category
    )
    env = demo_env(
        tmp_path / "unused.sqlite3",
        DJANGO_SETTINGS_MODULE="tests.db.server_settings",
        OTEL_DJANGO_TEST_DB=os.environ.get("OTEL_DJANGO_TEST_DB", "test_otel_django"),
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="100",
        OTEL_LOGS_EXPORTER="otlp",
        OTEL_DJANGO_EXPLAIN_ENABLED="true",
        OTEL_DJANGO_SLOW_QUERY_MS="100",
        DEMO_METRICS_PASSWORD=METRICS_PASSWORD,
        SENTRY_DSN=sentry_receiver.dsn,
    )
    server = runserver(free_port(), env, tmp_path / "logs")
    try:
        server.wait_ready()
        status, _, body = server.get("/db/canary/", {"X-Request-ID": "canary-1"})
        assert status == 200, body
        status, _, _ = server.get("/db/n-plus-one/", {"X-Request-ID": "canary-2"})
        assert status == 200
        for request_id, via in ERROR_REQUESTS.items():
            status, _, _ = server.get(f"/db/canary-error/?via={via}", {"X-Request-ID": request_id})
            assert status == 500
        status, _, exposition = server.get("/metrics", authorization(METRICS_PASSWORD))
        assert status == 200, exposition
        assert otlp_receiver.wait_for(
            lambda r: (
                all(any(e in str(log.body) for log in r.logs) for e in EVENTS)
                and {"canary-2", *ERROR_REQUESTS}
                <= {s.attributes.get("otel_django.request_id") for s in r.spans}
                and len(error_records(r)) == len(ERROR_REQUESTS)
            )
        ), "the receiver did not get the spans and log records in time"
        assert sentry_receiver.wait_for(lambda r: len(r.events) >= len(ERROR_REQUESTS)), (
            "the Sentry receiver did not get the events in time"
        )
    finally:
        server.stop()
    stdout, stderr = server.stdout(), server.stderr()

    # The queries really ran, slow and EXPLAINed, and were exported.
    canary_trace = next(
        s for s in otlp_receiver.spans if s.attributes.get("otel_django.request_id") == "canary-1"
    )
    queries = [s for s in otlp_receiver.trace(canary_trace.trace_id) if s.kind == "CLIENT"]
    assert len(queries) == 3
    texts = {s.attributes["db.query.text"] for s in queries}
    assert "SELECT count(*) FROM shop_product WHERE name = ?" in texts
    [slow] = [s for s in queries if s.attributes.get("otel_django.db.slow")]
    assert "Seq Scan on shop_product" in slow.attributes["otel_django.db.explain"]
    assert [name for name, _ in canary_trace.events] == ["slow_query"]
    json_lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    [slow_line] = [line for line in json_lines if line.get("event") == "slow_query"]
    assert slow_line["request_id"] == "canary-1"
    assert slow_line["trace_id"] == canary_trace.trace_id
    [n_plus_one_line] = [line for line in json_lines if line.get("event") == "n_plus_one"]
    assert n_plus_one_line["request_id"] == "canary-2"
    assert n_plus_one_line["count"] == 9

    # The failed queries: their errors keep type, SQLSTATE and frames in the span, the
    # django.request line, its OTLP record and the Sentry event; the canary is in none.
    for request_id in ERROR_REQUESTS:
        error_span = next(
            s
            for s in otlp_receiver.spans
            if s.attributes.get("otel_django.request_id") == request_id and s.kind == "SERVER"
        )
        assert error_span.attributes["error.type"] == "django.db.utils.DataError"
        [(name, event)] = error_span.events
        assert name == "exception" and event["exception.message"] == WITHHELD
        assert "in canary_error" in event["exception.stacktrace"]
        [line] = [
            line
            for line in json_lines
            if line.get("logger") == "django.request" and line.get("request_id") == request_id
        ]
        assert line["trace_id"] == error_span.trace_id
        error, cause = line["exception"]
        assert (error["exc_type"], error["exc_value"]) == ("DataError", WITHHELD)
        assert (cause["exc_type"], cause["exc_value"]) == ("InvalidTextRepresentation", WITHHELD)
        assert "canary_error" in [frame["name"] for frame in error["frames"]]
        [record] = [
            r
            for r in error_records(otlp_receiver)
            if r.attributes.get("otel_django.request_id") == request_id
        ]
        assert record.trace_id == error_span.trace_id
        assert record.attributes["exception.type"] == "DataError"
        assert record.attributes["exception.message"] == WITHHELD
        assert "in canary_error" in record.attributes["exception.stacktrace"]
        [sentry_event] = [
            e for e in sentry_receiver.events if e.get("tags", {}).get("request_id") == request_id
        ]
        assert sentry_event["contexts"]["trace"]["trace_id"] == error_span.trace_id
        *causes, raised = sentry_event["exception"]["values"]
        assert (raised["module"], raised["type"], raised["value"]) == (
            "django.db.utils",
            "DataError",
            WITHHELD,
        )
        assert [(c["type"], c["value"]) for c in causes] == [
            ("InvalidTextRepresentation", WITHHELD)
        ]
        assert "canary_error" in [f["function"] for f in raised["stacktrace"]["frames"]]

    # Nothing anywhere holds the canary.
    secret = CANARY.encode()
    assert otlp_receiver.raw_bodies
    for body in otlp_receiver.raw_bodies:
        assert secret not in body
    assert sentry_receiver.raw_bodies
    for body in sentry_receiver.raw_bodies:
        assert secret not in body
    assert CANARY not in stdout
    assert CANARY not in stderr
    assert secret not in exposition

    # The exposition has the query counters, and no label value holds SQL.
    text = exposition.decode()
    assert "otel_django_db_slow_queries_total{" in text
    assert "otel_django_db_n_plus_one_total{" in text
    assert "db_client_operation_duration_seconds_bucket{" in text
    for line in text.splitlines():
        if line.startswith(("#", "target_info")):  # resource attributes: no query there
            continue
        for name, value in LABEL.findall(line):
            assert "sql" not in name and "query_text" not in name and "statement" not in name
            assert not SQL_IN_LABEL.search(value), line


def error_records(receiver: OTLPReceiver) -> list[Any]:
    return [r for r in receiver.logs if r.body == "Internal Server Error: /db/canary-error/"]
