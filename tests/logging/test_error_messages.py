"""A database error in a view, on real PostgreSQL: its message quotes a value, so the log line
(JSON and console) and the span keep its type, SQLSTATE and frames only, unless
RECORD_DATABASE_ERROR_MESSAGES is on. (OTLP records: test_otlp_logs.py; Sentry: test_sentry.py;
a real server: tests/db/test_canary_end_to_end.py.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_django.config import Config
from tests.logging.urls import DB_ERROR_CANARY
from tests.support.lines import Lines, parse_lines

pytestmark = [
    pytest.mark.urls("tests.logging.urls"),
    pytest.mark.postgres,
    pytest.mark.django_db(databases=["default", "postgres"]),
]

WITHHELD = "SQLSTATE 22P02 (message withheld)"


def request_error_line(lines: list[dict[str, Any]]) -> dict[str, Any]:
    (line,) = [
        line
        for line in lines
        if line.get("logger") == "django.request" and line["event"].startswith("Internal")
    ]
    return line


def fail() -> None:
    response = Client(raise_request_exception=False).get("/db-error/")
    assert response.status_code == 500


@pytest.mark.smoke
def test_the_log_line_keeps_type_sqlstate_and_frames_not_the_value(
    raw_output: Callable[[], str], spans: InMemorySpanExporter
) -> None:
    fail()
    output = raw_output()
    assert DB_ERROR_CANARY not in output
    error, cause = request_error_line(parse_lines(output))["exception"]
    assert error["exc_type"] == "DataError" and error["exc_value"] == WITHHELD
    assert cause["exc_type"] == "InvalidTextRepresentation" and cause["exc_value"] == WITHHELD
    assert cause["is_cause"] is True
    assert "database_error" in [frame["name"] for frame in error["frames"]]
    (server,) = [s for s in spans.get_finished_spans() if s.kind.name == "SERVER"]
    (event,) = server.events
    assert event.attributes is not None
    assert event.attributes["exception.message"] == WITHHELD
    assert "in database_error" in str(event.attributes["exception.stacktrace"])
    assert DB_ERROR_CANARY not in str(event.attributes)


def test_the_console_format_withholds_it_too(
    override_config: Callable[..., Config], raw_output: Callable[[], str]
) -> None:
    override_config(log_format="console")
    fail()
    output = raw_output()
    assert f"django.db.utils.DataError: {WITHHELD}" in output
    assert "in database_error" in output and "The above exception was the direct cause" in output
    assert DB_ERROR_CANARY not in output


def test_record_database_error_messages_records_them(
    override_config: Callable[..., Config], lines: Lines, spans: InMemorySpanExporter
) -> None:
    override_config(record_database_error_messages=True)
    fail()
    error, cause = request_error_line(lines())["exception"]
    assert DB_ERROR_CANARY in error["exc_value"] and "LINE 1" in error["exc_value"]
    assert DB_ERROR_CANARY in cause["exc_value"]
    (server,) = [s for s in spans.get_finished_spans() if s.kind.name == "SERVER"]
    (event,) = server.events
    assert event.attributes is not None
    assert DB_ERROR_CANARY in str(event.attributes["exception.message"])
