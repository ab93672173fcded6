"""Every private access in ``otel_django._compat`` still works on the installed versions.

Proves, one test per access, on real objects of the libraries: the names exist and behave as
``_compat`` relies on, so that an upgrade that moves one fails here instead of silently
costing a fast path, a limit or a message. The fast span path's accesses are proved by
``tests/traces/test_spans.py``, ``test_otlp_http.py`` and ``test_encoding.py``.
"""

from __future__ import annotations

import importlib
import inspect
import traceback

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricReader

from otel_django import _compat
from otel_django.metrics import cardinality


def test_sdk_gauge_class_is_what_create_gauge_builds() -> None:
    gauge = MeterProvider().get_meter("t").create_gauge("g")
    assert isinstance(gauge, _compat.sdk_gauge_class())
    assert _compat.sdk_gauge_class().__name__ == "Gauge"


@pytest.mark.skipif(
    "cardinality_limits" in inspect.signature(MetricReader.__init__).parameters,
    reason="this SDK limits its streams itself",
)
def test_cardinality_backport_limits_every_stream() -> None:
    from opentelemetry.sdk.metrics._internal._view_instrument_match import _ViewInstrumentMatch

    assert _compat.backport_cardinality_limit(4, cardinality.OVERFLOW_ATTRIBUTES)
    try:
        wrapped = _ViewInstrumentMatch.__dict__["consume_measurement"]
        original = _ViewInstrumentMatch._otel_django_original  # type: ignore[attr-defined]
        assert wrapped is not original and original.__name__ == "consume_measurement"
        assert _compat.backport_cardinality_limit(4, cardinality.OVERFLOW_ATTRIBUTES)
        assert _ViewInstrumentMatch.__dict__["consume_measurement"] is wrapped  # wrapped once
        reader = InMemoryMetricReader()
        counter = MeterProvider(metric_readers=[reader]).get_meter("t").create_counter("c")
        for i in range(10):
            counter.add(1, {"i": i})
        counter.add(1, {"i": 0})
        data = reader.get_metrics_data()
        assert data is not None
        points = data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points
        by_attributes = {tuple(sorted(p.attributes.items())): p.value for p in points}  # type: ignore[union-attr]
        assert by_attributes == {
            (("i", 0),): 2,
            (("i", 1),): 1,
            (("i", 2),): 1,
            (("i", 3),): 1,
            (("otel.metric.overflow", True),): 6,
        }
    finally:
        cardinality.reader_options(2000)  # the test settings' limit


def test_sdk_reader_limits_when_supported() -> None:
    options = cardinality.reader_options(10)
    if "cardinality_limits" in inspect.signature(MetricReader.__init__).parameters:
        assert set(options["cardinality_limits"].values()) == {9}
        InMemoryMetricReader(**options)  # accepted as given
    else:
        assert options == {}
    cardinality.reader_options(2000)


def test_exporter_preferences_are_what_the_exporter_was_given() -> None:
    from opentelemetry.sdk.metrics import Counter
    from opentelemetry.sdk.metrics.export import AggregationTemporality, ConsoleMetricExporter
    from opentelemetry.sdk.metrics.view import LastValueAggregation

    temporality = {Counter: AggregationTemporality.DELTA}
    aggregation = {Counter: LastValueAggregation()}
    exporter = ConsoleMetricExporter(
        preferred_temporality=temporality, preferred_aggregation=aggregation
    )
    preferred_temporality, preferred_aggregation = _compat.exporter_preferences(exporter)
    assert preferred_temporality[Counter] is AggregationTemporality.DELTA
    assert preferred_aggregation[Counter] is aggregation[Counter]


def test_base_configurator_is_the_sdk_configurators_base() -> None:
    from opentelemetry.sdk._configuration import _OTelSDKConfigurator

    base = _compat.base_configurator()
    assert issubclass(_OTelSDKConfigurator, base)
    assert callable(base.configure) and "_configure" in base.__abstractmethods__


def test_parent_based_unsampled_delegates() -> None:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased

    assert _compat.parent_based_unsampled_delegates(ParentBased(ALWAYS_ON)) == (
        ALWAYS_OFF,
        ALWAYS_OFF,
    )
    sampler = ParentBased(ALWAYS_ON, local_parent_not_sampled=ALWAYS_ON)
    assert _compat.parent_based_unsampled_delegates(sampler) == (ALWAYS_ON, ALWAYS_OFF)


def test_composite_members_in_order() -> None:
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    first, second = TraceContextTextMapPropagator(), W3CBaggagePropagator()
    assert _compat.composite_members(CompositePropagator([first, second])) == [first, second]


@pytest.mark.parametrize("transport", ["otlp_proto_http", "otlp_proto_grpc"])
def test_otlp_log_exporter_paths(transport: str) -> None:
    module, _, name = _compat.OTLP_LOG_EXPORTERS[transport].partition(":")
    exporter_class = getattr(importlib.import_module(module), name)
    from opentelemetry.sdk._logs.export import LogRecordExporter

    assert issubclass(exporter_class, LogRecordExporter)


def test_exporter_endpoint_of_http_and_grpc_exporters() -> None:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter as GrpcExporter,
    )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    http = OTLPSpanExporter(endpoint="http://127.0.0.1:9/v1/traces")
    grpc = GrpcExporter(endpoint="http://127.0.0.1:9")
    try:
        assert _compat.exporter_endpoint(http) == "http://127.0.0.1:9/v1/traces"
        assert _compat.exporter_endpoint(grpc) == "127.0.0.1:9"
        assert _compat.exporter_endpoint(object()) is None
    finally:
        http.shutdown()  # type: ignore[no-untyped-call]
        grpc.shutdown()


def test_sqlalchemy_pool_max_overflow() -> None:
    from sqlalchemy.pool import QueuePool, StaticPool

    assert _compat.pool_max_overflow(QueuePool(lambda: None, pool_size=2, max_overflow=3)) == 3
    assert _compat.pool_max_overflow(StaticPool(lambda: None)) is None


def test_django_postgresql_pools_are_kept_per_alias_on_the_class() -> None:
    pytest.importorskip("psycopg")
    from django.db.backends.postgresql.base import DatabaseWrapper

    assert isinstance(DatabaseWrapper.__dict__["_connection_pools"], dict)
    pool_property = DatabaseWrapper.__dict__["pool"]
    assert "_connection_pools" in pool_property.fget.__code__.co_names
    assert _compat.psycopg_pool(DatabaseWrapper, "no-such-alias") is None


def test_current_span_key_finds_the_current_span() -> None:
    from opentelemetry import context, trace
    from opentelemetry.sdk.trace import TracerProvider

    key = _compat.current_span_key()
    assert key is not None
    span = TracerProvider().get_tracer("t").start_span("s")
    token = context.attach(trace.set_span_in_context(span))
    try:
        assert context.get_current().get(key) is span
    finally:
        context.detach(token)


def test_getframe_is_the_callers_frame() -> None:
    def inner() -> object:
        return _compat.getframe(1)

    assert inner() is inspect.currentframe()


def test_traceback_exception_text_is_replaced() -> None:
    try:
        raise ValueError("secret")
    except ValueError as error:
        error.add_note("a note")
        formatted = traceback.TracebackException.from_exception(error)
    assert _compat.replace_exception_text(formatted, "(withheld)")
    text = "".join(formatted.format_exception_only())
    assert text == "ValueError: (withheld)\n"
    assert not _compat.replace_exception_text(object(), "x")  # type: ignore[arg-type]
