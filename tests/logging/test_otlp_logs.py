"""OTLP log export: the same lines, as OTel log records correlated with the request's trace,
received by a real OTLP/HTTP receiver; stdout keeps each line exactly once."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest
from django.test import Client
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_django.config import Config
from otel_django.logging.otlp import GuardedLogExporter, setup_log_export
from otel_django.logging.setup import configure_logging
from otel_django.redaction import REDACTED
from tests.support.lines import Lines
from tests.support.otlp_receiver import OTLPReceiver
from tests.support.services import free_port

pytestmark = pytest.mark.urls("tests.logging.urls")


@pytest.fixture
def exporting(
    otlp_receiver: OTLPReceiver,
    override_config: Callable[..., Config],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[OTLPReceiver]:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_receiver.endpoint)
    config = override_config(logs_exporter=("otlp",))
    pipeline = configure_logging(config)  # as override_config did, to hold what it set up
    assert pipeline is not None and pipeline.log_export is not None
    provider = setup_log_export(config, Resource.create({"service.name": "otel-django-tests"}))
    assert provider is not None
    pipeline.log_export.start(provider)
    _providers.append(provider)
    try:
        yield otlp_receiver
    finally:
        _providers.remove(provider)
        pipeline.log_export.stop()
        provider.shutdown()
    assert pipeline.log_export.provider is None


# The provider of the test running, for flush().
_providers: list[LoggerProvider] = []


def flush() -> None:
    (provider,) = _providers
    provider.force_flush()


def test_lines_are_exported_with_the_request_trace_and_printed_once(
    exporting: OTLPReceiver, lines: Lines, spans: InMemorySpanExporter
) -> None:
    Client().post("/form/", {"user": "ann", "password": "p4ss"}, HTTP_X_REQUEST_ID="otlp-req-1")
    flush()
    assert exporting.wait_for(lambda r: len(r.logs) >= 3)
    (server,) = [s for s in spans.get_finished_spans() if s.kind.name == "SERVER"]
    trace_id = format(server.context.trace_id, "032x")
    printed = lines()
    assert [line["event"] for line in printed] == ["form received", "form received", "request"]
    records = [
        r for r in exporting.logs if r.attributes.get("otel_django.request_id") == "otlp-req-1"
    ]
    assert [r.body for r in records] == ["form received", "form received", "request"]
    for record, line in zip(records, printed, strict=True):
        assert record.trace_id == trace_id == line["trace_id"]
        assert record.span_id == line["span_id"]
        assert record.severity == line["level"].upper()
        assert record.resource["service.name"] == "otel-django-tests"
    assert records[0].attributes["password"] == REDACTED
    assert records[2].attributes["http.route"] == "form/"
    assert records[2].attributes["http.response.status_code"] == 200
    assert "p4ss" not in str(exporting.logs)


def test_exceptions_are_exported_with_semantic_attributes(exporting: OTLPReceiver) -> None:
    Client(raise_request_exception=False).get("/boom/")
    flush()
    assert exporting.wait_for(lambda r: any(x.severity == "ERROR" for x in r.logs))
    (record,) = [r for r in exporting.logs if r.body == "Internal Server Error: /boom/"]
    assert record.attributes["exception.type"] == "RuntimeError"
    assert record.attributes["exception.message"] == "demo failure: this view always raises"
    assert "in boom" in record.attributes["exception.stacktrace"]


def test_outside_a_request_records_have_no_trace(exporting: OTLPReceiver) -> None:
    logging.getLogger("tests.otlp").warning("no request here")
    flush()
    assert exporting.wait_for(lambda r: len(r.logs) >= 1)
    (record,) = exporting.logs
    assert record.trace_id == "" and "otel_django.request_id" not in record.attributes


def test_an_unreachable_endpoint_drops_records_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    endpoint = f"http://127.0.0.1:{free_port()}/v1/logs"
    exporter = GuardedLogExporter(OTLPLogExporter(endpoint=endpoint, timeout=1))
    for _ in range(3):
        assert exporter.export([]).name == "FAILURE"
    warnings = [r for r in caplog.records if r.name == "otel_django.export"]
    assert len(warnings) == 1 and "log export" in warnings[0].getMessage()


@pytest.mark.postgres
@pytest.mark.django_db(databases=["default", "postgres"])
def test_a_database_error_is_exported_without_the_values_it_quotes(
    exporting: OTLPReceiver,
) -> None:
    from tests.logging.urls import DB_ERROR_CANARY

    Client(raise_request_exception=False).get("/db-error/")
    flush()
    assert exporting.wait_for(lambda r: any(x.severity == "ERROR" for x in r.logs))
    (record,) = [r for r in exporting.logs if r.body == "Internal Server Error: /db-error/"]
    assert record.attributes["exception.type"] == "DataError"
    assert record.attributes["exception.message"] == "SQLSTATE 22P02 (message withheld)"
    stacktrace = record.attributes["exception.stacktrace"]
    assert "in database_error" in stacktrace and "InvalidTextRepresentation" in stacktrace
    assert all(DB_ERROR_CANARY.encode() not in body for body in exporting.raw_bodies)
