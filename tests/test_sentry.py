"""Sentry with the real sentry-sdk and a transport that keeps envelopes (no network): events are
linked to the OTel trace and the request id, carry no secrets, and propagation stays W3C."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from django.test import Client
from opentelemetry import baggage, context, propagate, trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_django import runtime
from otel_django.config import ConfigError, load_config
from otel_django.sentry import SentryTracePropagator, setup_sentry
from tests.support.spans import server_span

sentry_sdk = pytest.importorskip("sentry_sdk")
from sentry_sdk.envelope import Envelope  # noqa: E402
from sentry_sdk.transport import Transport  # noqa: E402

pytestmark = pytest.mark.urls("tests.logging.urls")

DSN = "https://public@o1.ingest.sentry.io/1"
CANARY = "CANARY-sentry-5e1f"


class CapturingTransport(Transport):
    envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        CapturingTransport.envelopes.append(envelope)


def events() -> list[dict[str, Any]]:
    found = [e.get_event() for e in CapturingTransport.envelopes]
    return [e for e in found if e is not None]


@pytest.fixture
def sentry() -> Iterator[list[Envelope]]:
    previous_propagator = propagate.get_global_textmap()
    config = runtime.current().config.replace(
        sentry_dsn=DSN, environment="staging", service_version="1.4.2"
    )
    CapturingTransport.envelopes = []
    assert setup_sentry(config, transport=CapturingTransport)
    try:
        # Test client requests share one thread and so one Sentry isolation scope: each test
        # gets its own, as each request gets one from Sentry's WSGI/ASGI wrapper in a server.
        with sentry_sdk.isolation_scope():
            yield CapturingTransport.envelopes
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.init()  # no DSN: an inert client
        propagate.set_global_textmap(previous_propagator)
        from sentry_sdk.scope import remove_external_propagation_context

        remove_external_propagation_context()


def test_a_view_exception_event_carries_the_trace_and_request_id(
    sentry: list[Envelope], spans: InMemorySpanExporter
) -> None:
    response = Client(raise_request_exception=False).get("/boom/", HTTP_X_REQUEST_ID="sentry-req-1")
    assert response.status_code == 500
    span = server_span(spans)
    (event,) = events()
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    assert event["contexts"]["trace"]["trace_id"] == format(span.context.trace_id, "032x")
    assert event["contexts"]["trace"]["span_id"] == format(span.context.span_id, "016x")
    assert event["tags"]["request_id"] == "sentry-req-1" == response["X-Request-ID"]
    assert event["environment"] == "staging" and event["release"] == "1.4.2"
    assert sentry_sdk.get_client().should_send_default_pii() is False


def test_a_continued_trace_is_the_one_sentry_links(
    sentry: list[Envelope], spans: InMemorySpanExporter
) -> None:
    trace_id, parent_id = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    Client(raise_request_exception=False).get(
        "/boom/",
        HTTP_TRACEPARENT=f"00-{trace_id}-{parent_id}-01",
        HTTP_BAGGAGE="tenant=acme",
    )
    span = server_span(spans)
    assert format(span.context.trace_id, "032x") == trace_id
    assert span.parent is not None and format(span.parent.span_id, "016x") == parent_id
    (event,) = events()
    assert event["contexts"]["trace"]["trace_id"] == trace_id


def wsgi_request(method: str, path: str, query: str, body: bytes = b"", **headers: str) -> int:
    """Through Django's WSGI application, as a server calls it (Sentry wraps it there)."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    environ.update(
        {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            "CONTENT_TYPE": "application/x-www-form-urlencoded",
        }
    )
    environ.update({"HTTP_" + k.upper(): v for k, v in headers.items()})
    statuses: list[str] = []
    # As Django's test client does: no closing of the test's database connections.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        response = WSGIHandler()(environ, lambda status, _h, *args: statuses.append(status))
        b"".join(response)
        response.close()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    return int(statuses[0].split()[0])


def test_sentry_events_carry_no_secrets(sentry: list[Envelope]) -> None:
    status = wsgi_request(
        "POST",
        "/form-fail/",
        f"password={CANARY}&q=ok",
        f"password={CANARY}&user=ann".encode(),
        AUTHORIZATION=f"Bearer {CANARY}",
        COOKIE=f"sessionid={CANARY}; csrftoken={CANARY}",
        X_API_KEY=CANARY,
    )
    assert status == 500
    (envelope,) = sentry
    body = envelope.serialize()
    assert b"failed after reading the form" in body
    assert CANARY.encode() not in body
    (event,) = events()
    assert event["request"]["query_string"] == "password=[REDACTED]&q=ok"
    assert "Authorization" not in event["request"]["headers"]
    crumbs = event["breadcrumbs"]["values"]
    assert any(
        c.get("data", {}).get("form") == {"password": "[REDACTED]", "user": "ann"} for c in crumbs
    )


def test_propagation_stays_w3c_and_adds_sentry_trace(sentry: list[Envelope]) -> None:
    tracer = trace.get_tracer("tests")
    carrier: dict[str, str] = {}
    token = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        with tracer.start_as_current_span("outgoing") as span:
            propagate.inject(carrier)
            ids = span.get_span_context()
    finally:
        context.detach(token)
    assert carrier["traceparent"].startswith(f"00-{ids.trace_id:032x}-{ids.span_id:016x}-")
    assert carrier["baggage"] == "tenant=acme"
    assert carrier["sentry-trace"] == f"{ids.trace_id:032x}-{ids.span_id:016x}-1"
    extracted = propagate.extract(carrier)
    assert trace.get_current_span(extracted).get_span_context().trace_id == ids.trace_id
    assert baggage.get_baggage("tenant", extracted) == "acme"


def test_setting_up_twice_chains_the_propagator_once(sentry: list[Envelope]) -> None:
    config = runtime.current().config.replace(sentry_dsn=DSN)
    setup_sentry(config, transport=CapturingTransport)
    carrier: dict[str, str] = {}
    with trace.get_tracer("tests").start_as_current_span("x"):
        propagate.inject(carrier)
    assert (
        sum(
            isinstance(p, SentryTracePropagator)
            for p in propagate.get_global_textmap()._propagators
        )
        == 1
    )  # type: ignore[attr-defined]
    assert "traceparent" in carrier


def test_without_a_dsn_nothing_is_set_up() -> None:
    assert setup_sentry(runtime.current().config.replace(sentry_dsn=None)) is False


def test_a_malformed_dsn_is_a_config_error_that_hides_the_dsn() -> None:
    with pytest.raises(ConfigError, match="SENTRY_DSN") as raised:
        load_config({}, {"SENTRY_DSN": "not-a-dsn-secretkey"})
    assert "secretkey" not in str(raised.value)
    # The standard variable: ignored with a warning, which does not quote it either.
    config = load_config({"SENTRY_DSN": "not-a-dsn-secretkey"}, {})
    assert config.sentry.dsn is None
    (warning,) = config.warnings
    assert warning.startswith("SENTRY_DSN") and "secretkey" not in warning


@pytest.mark.postgres
@pytest.mark.django_db(databases=["default", "postgres"])
def test_a_database_error_event_keeps_type_and_frames_not_the_values(
    sentry: list[Envelope],
) -> None:
    from tests.logging.urls import DB_ERROR_CANARY

    assert wsgi_request("GET", "/db-error/", "") == 500
    (envelope,) = sentry
    assert DB_ERROR_CANARY.encode() not in envelope.serialize()
    (event,) = events()
    *causes, error = event["exception"]["values"]
    assert (error["module"], error["type"]) == ("django.db.utils", "DataError")
    assert error["value"] == "SQLSTATE 22P02 (message withheld)"
    assert [(c["module"], c["type"], c["value"]) for c in causes] == [
        ("psycopg.errors", "InvalidTextRepresentation", "SQLSTATE 22P02 (message withheld)")
    ]
    assert "database_error" in [f["function"] for f in error["stacktrace"]["frames"]]
    # Sentry's own breadcrumb of the failing query: its literal is replaced, as on spans.
    queries = [c for c in event["breadcrumbs"]["values"] if c.get("category") == "query"]
    assert [c["message"] for c in queries] == ["SELECT ?::int"]


@pytest.mark.postgres
@pytest.mark.django_db(databases=["default", "postgres"])
def test_record_database_error_messages_sends_them(sentry: list[Envelope]) -> None:
    from tests.logging.urls import DB_ERROR_CANARY

    sentry_sdk.get_client().close()
    config = runtime.current().config.replace(sentry_dsn=DSN, record_database_error_messages=True)
    assert setup_sentry(config, transport=CapturingTransport)
    assert wsgi_request("GET", "/db-error/", "") == 500
    (event,) = events()
    assert DB_ERROR_CANARY in event["exception"]["values"][-1]["value"]
