"""otel_django's OTLPSpanExporter is upstream's, with only the encoding changed.

Each test runs the exporter against the tests' OTLP receiver (real protobuf over HTTP) and,
where it matters, upstream's exporter beside it: the environment it reads, what arrives,
the size limit, failures, shutdown and the exporter metrics must be the same.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as UpstreamOTLPSpanExporter,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_django import _compat
from otel_django.traces.otlp_http import OTLPSpanExporter
from tests.support.otlp_receiver import OTLPReceiver
from tests.traces.test_encoding import EVERY_TYPE, record, sdk_message

pytestmark = pytest.mark.smoke


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    server = OTLPReceiver().start()
    yield server
    server.stop()


def _spans() -> list[ReadableSpan]:
    def body(tracer: trace.Tracer) -> None:
        with tracer.start_as_current_span("GET /", kind=trace.SpanKind.SERVER) as root:
            root.set_attributes(EVERY_TYPE)
            root.add_event("slow_query", {"ms": 12})
            tracer.start_span("SELECT", kind=trace.SpanKind.CLIENT).end()

    return record(body, Resource.create({"service.name": "exporter-test"}))


def _received(receiver: OTLPReceiver) -> ExportTraceServiceRequest:
    assert receiver.wait_for(lambda r: bool(r.raw_bodies))
    message = ExportTraceServiceRequest()
    message.ParseFromString(receiver.raw_bodies[-1])
    return message


def test_the_direct_encoding_is_in_use_on_the_installed_versions() -> None:
    """Fails when an upgrade of the SDK or the exporter breaks an internal access: the
    exporter would still work (through upstream's encoder), but slower."""
    assert _compat.span_containers_available()
    assert _compat.exporter_send_path_available()
    assert OTLPSpanExporter(endpoint="http://127.0.0.1:9/v1/traces").encodes_directly


def test_it_is_upstreams_exporter() -> None:
    assert issubclass(OTLPSpanExporter, UpstreamOTLPSpanExporter)


def test_what_arrives_is_what_the_sdk_encoder_sends(receiver: OTLPReceiver) -> None:
    spans = _spans()
    exporter = OTLPSpanExporter(endpoint=receiver.endpoint + "/v1/traces")

    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert _received(receiver) == sdk_message(spans)


def test_endpoint_headers_and_compression_come_from_the_environment(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=acme")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")
    exporter = OTLPSpanExporter()
    upstream = UpstreamOTLPSpanExporter()

    assert exporter._endpoint == upstream._endpoint == receiver.endpoint + "/v1/traces"
    assert exporter._client._headers == upstream._client._headers
    assert exporter._client._headers["x-tenant"] == "acme"
    assert exporter._compression is upstream._compression
    assert exporter._client._headers.get("Content-Encoding") == "gzip"
    assert exporter.export(_spans()) is SpanExportResult.SUCCESS
    assert _received(receiver).resource_spans[0].scope_spans[0].spans


def test_a_batch_over_the_size_limit_is_dropped_unsent(receiver: OTLPReceiver) -> None:
    exporter = OTLPSpanExporter(endpoint=receiver.endpoint + "/v1/traces", max_request_size=64)

    assert exporter.export(_spans()) is SpanExportResult.FAILURE
    assert receiver.requests == 0


def test_a_refused_batch_is_a_failure(receiver: OTLPReceiver) -> None:
    exporter = OTLPSpanExporter(endpoint=receiver.endpoint + "/v1/unknown", timeout=5)

    assert exporter.export(_spans()) is SpanExportResult.FAILURE
    assert receiver.requests == 1  # a 4xx answer is not retried


def test_after_shutdown_nothing_is_sent(receiver: OTLPReceiver) -> None:
    exporter = OTLPSpanExporter(endpoint=receiver.endpoint + "/v1/traces")
    exporter.shutdown()

    assert exporter.export(_spans()) is SpanExportResult.FAILURE
    assert receiver.requests == 0


def test_a_batch_the_direct_encoder_declines_goes_through_upstream(receiver: OTLPReceiver) -> None:
    (span,) = record(lambda t: t.start_span("odd", attributes={"huge": 2**64, "ok": 1}).end())
    exporter = OTLPSpanExporter(endpoint=receiver.endpoint + "/v1/traces")

    assert exporter.export([span]) is SpanExportResult.SUCCESS
    (received,) = receiver.spans
    assert received.attributes == {"ok": 1}  # upstream drops what protobuf cannot hold


def _metric_points(
    reader: InMemoryMetricReader,
) -> dict[str, list[tuple[dict[str, object], float]]]:
    data = reader.get_metrics_data()
    points: dict[str, list[tuple[dict[str, object], float]]] = {}
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    value = getattr(point, "value", None)
                    if value is None:
                        value = point.count  # histograms: how many operations
                    attributes = {
                        k: v for k, v in dict(point.attributes or {}).items() if k != "server.port"
                    }
                    attributes.pop("otel.component.name", None)  # numbered per instance
                    points.setdefault(metric.name, []).append((attributes, value))
    return points


def test_exporter_metrics_are_upstreams(
    receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
    figures = []
    for cls, path in ((OTLPSpanExporter, "/v1/traces"), (UpstreamOTLPSpanExporter, "/v1/traces")):
        reader = InMemoryMetricReader()
        meter_provider = MeterProvider([reader])
        exporter = cls(endpoint=receiver.endpoint + path, meter_provider=meter_provider)
        exporter.export(_spans())
        small = cls(
            endpoint=receiver.endpoint + path, meter_provider=meter_provider, max_request_size=64
        )
        small.export(_spans())
        figures.append(_metric_points(reader))

    ours, upstream = figures
    assert "otel.sdk.exporter.span.exported" in ours
    assert ours == upstream
