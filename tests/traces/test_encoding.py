"""The direct OTLP encoder gives the SDK encoder's message, decoded, for every span shape.

Golden corpus: spans recorded by the real SDK (``TracerProvider``, span limits, samplers),
encoded by both encoders, each output parsed back into an ``ExportTraceServiceRequest``
and compared message for message (not byte for byte: field order may differ). A
hypothesis case draws attributes, events, links and status at random.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from otel_django.traces.encoding import SpanEncoder

pytestmark = pytest.mark.smoke


def _decode(data: bytes) -> ExportTraceServiceRequest:
    message = ExportTraceServiceRequest()
    message.ParseFromString(data)
    return message


def sdk_message(spans: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
    return _decode(encode_spans(spans).SerializePartialToString())


def our_message(spans: Sequence[ReadableSpan], encoder: SpanEncoder | None = None) -> Any:
    data = (encoder or SpanEncoder()).encode(spans)
    assert data is not None, "the direct encoder gave up on a shape it should handle"
    return _decode(data)


def assert_same(spans: Sequence[ReadableSpan], encoder: SpanEncoder | None = None) -> None:
    ours, theirs = our_message(spans, encoder), sdk_message(spans)
    assert ours == theirs, f"direct:\n{ours}\nSDK:\n{theirs}"


def record(
    body: Callable[[trace.Tracer], None],
    resource: Resource | None = None,
    limits: SpanLimits | None = None,
    scope: tuple[str, str | None, str | None, dict[str, Any] | None] = ("tests", "1.0", None, None),
) -> list[ReadableSpan]:
    provider = TracerProvider(resource=resource or Resource.create({}), span_limits=limits)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    name, version, schema_url, attributes = scope
    body(provider.get_tracer(name, version, schema_url, attributes))
    provider.shutdown()
    return list(exporter.get_finished_spans())


EVERY_TYPE: dict[str, Any] = {
    "string": "value",
    "empty string": "",
    "true": True,
    "false": False,
    "int": 42,
    "zero": 0,
    "negative": -1,
    "int64 max": 2**63 - 1,
    "int64 min": -(2**63),
    "float": 1.5,
    "zero float": 0.0,
    "negative zero": -0.0,
    "infinity": math.inf,
    "minus infinity": -math.inf,
    "bytes": b"\x00\xffraw",
    "strings": ["a", "b", ""],
    "bools": [True, False],
    "ints": [1, -2, 3],
    "floats": [0.5, -1.25],
    "empty list": [],
    "mixed": ["a", 1, 2.5, True, None],
    "nested": [[1, 2], ["x"]],
    "mapping": {"inner": "v", "n": 1, "deeper": {"list": [1, "two"]}},
    "none": None,
    "unicode ключ ✓": "значение ✓ 🚀",
}


def test_every_attribute_type_on_a_server_span() -> None:
    spans = record(
        lambda t: t.start_span(
            "GET /products/<id>", kind=SpanKind.SERVER, attributes=EVERY_TYPE
        ).end()
    )
    assert_same(spans)


def test_a_request_tree_with_events_status_and_every_kind() -> None:
    def body(tracer: trace.Tracer) -> None:
        with tracer.start_as_current_span("GET /", kind=SpanKind.SERVER) as root:
            root.set_attributes({"http.request.method": "GET", "http.response.status_code": 500})
            for kind in (SpanKind.CLIENT, SpanKind.PRODUCER, SpanKind.CONSUMER, SpanKind.INTERNAL):
                with tracer.start_as_current_span(f"child {kind.name}", kind=kind) as child:
                    child.add_event("slow_query", {"db.query.text": "SELECT ?", "ms": 12.5})
                    child.add_event("no attributes")
            try:
                raise ValueError("boom ✗")
            except ValueError as exc:
                root.record_exception(exc)
            root.set_status(Status(StatusCode.ERROR, "failed: ошибка"))
        with tracer.start_as_current_span("ok") as span:
            span.set_status(StatusCode.OK)

    assert_same(record(body))


def test_links_remote_parents_trace_state_and_flags() -> None:
    state = TraceState([("vendor", "value"), ("other", "x=1")])
    remote = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1), trace_state=state)
    local = SpanContext(0x123, 0x456, is_remote=False, trace_flags=TraceFlags(0))

    def body(tracer: trace.Tracer) -> None:
        parent = trace.set_span_in_context(trace.NonRecordingSpan(remote))
        tracer.start_span(
            "from a remote parent",
            context=parent,
            links=[Link(local, {"link.attr": "x", "n": [1, 2]}), Link(remote)],
        ).end()
        with tracer.start_as_current_span("local root") as root:
            root.add_link(remote, {"late": True})
            tracer.start_span("local child").end()

    spans = record(body)
    assert any(s.parent is not None and s.parent.is_remote for s in spans)
    assert any(s.context is not None and s.context.trace_state for s in spans)
    assert_same(spans)


def test_limits_hit_and_dropped_counts() -> None:
    limits = SpanLimits(
        max_span_attributes=3,
        max_events=2,
        max_links=1,
        max_event_attributes=1,
        max_link_attributes=1,
        max_span_attribute_length=4,
        max_attribute_length=4,
    )
    link_context = SpanContext(0x77, 0x88, is_remote=False)

    def body(tracer: trace.Tracer) -> None:
        span = tracer.start_span(
            "limited",
            attributes={f"k{i}": "long value" for i in range(6)},
            links=[Link(link_context, {"a": 1, "b": 2}), Link(link_context)],
        )
        for i in range(4):
            span.add_event(f"e{i}", {"x": "truncated?", "y": 2})
        span.end()

    (span,) = record(body, limits=limits)
    assert span.dropped_attributes and span.dropped_events and span.dropped_links
    assert span.events[0].dropped_attributes
    assert_same([span])


def test_resources_and_scopes_are_grouped_as_the_sdk_groups_them() -> None:
    a = Resource.create({"service.name": "a", "service.version": "1"}, schema_url="https://s/1")
    b = Resource.create({"service.name": "b"})
    a_again = Resource.create(
        {"service.name": "a", "service.version": "1"}, schema_url="https://s/1"
    )
    assert a == a_again and a is not a_again

    def two_scopes(tracer: trace.Tracer) -> None:
        tracer.start_span("first").end()

    spans = (
        record(two_scopes, a, scope=("one", "1", "https://scope/1", {"scope.attr": "v"}))
        + record(two_scopes, b, scope=("two", None, None, None))
        + record(two_scopes, a_again, scope=("one", "1", "https://scope/1", {"scope.attr": "v"}))
        + record(two_scopes, a, scope=("three", "", None, None))
    )
    message = our_message(spans)
    assert len(message.resource_spans) == 2
    assert_same(spans)


def test_an_empty_batch_and_a_span_without_a_scope() -> None:
    assert_same([])
    (span,) = record(lambda t: t.start_span("").end())
    bare = ReadableSpan(
        name="bare",
        context=span.context,
        resource=span.resource,
        start_time=1,
        end_time=2,
        instrumentation_scope=None,
    )
    assert_same([span, bare])


def test_repeated_batches_from_the_caches_stay_equal() -> None:
    encoder = SpanEncoder()

    def body(tracer: trace.Tracer) -> None:
        for i in range(3):
            tracer.start_span("q", attributes={"db.system.name": "sqlite", "n": i, "b": True}).end()

    for _ in range(3):
        assert_same(record(body), encoder)


@pytest.mark.parametrize(
    "value", [2**63, -(2**63) - 1, "lone \ud800 surrogate", [1, 2**64]], ids=repr
)
def test_values_the_sdk_drops_are_left_to_the_sdk(value: object) -> None:
    (span,) = record(lambda t: t.start_span("odd", attributes={"odd": value, "ok": 1}).end())

    assert SpanEncoder().encode([span]) is None


# --- property-based ---------------------------------------------------------------------

_text = st.text(max_size=12)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    _text,
    st.binary(max_size=8),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.text(min_size=1, max_size=5), inner, max_size=3),
    ),
    max_leaves=6,
)
_attributes = st.dictionaries(st.text(min_size=1, max_size=10), _values, max_size=6)


@st.composite
def _span_shapes(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "name": draw(_text),
        "kind": draw(st.sampled_from(list(SpanKind))),
        "attributes": draw(_attributes),
        "events": draw(st.lists(st.tuples(_text, _attributes), max_size=3)),
        "links": draw(
            st.lists(
                st.tuples(
                    st.integers(1, 2**128 - 1),
                    st.integers(1, 2**64 - 1),
                    st.booleans(),
                    _attributes,
                ),
                max_size=2,
            )
        ),
        "status": draw(st.sampled_from([None, StatusCode.OK, StatusCode.ERROR])),
        "description": draw(st.one_of(st.none(), _text)),
        "remote_parent": draw(st.booleans()),
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_span_shapes(), min_size=1, max_size=4), _attributes)
def test_random_spans_encode_as_the_sdk_encodes_them(
    shapes: list[dict[str, Any]], resource_attributes: dict[str, Any]
) -> None:
    resource_values = {k: v for k, v in resource_attributes.items() if not isinstance(v, dict)}

    def body(tracer: trace.Tracer) -> None:
        for shape in shapes:
            context = None
            if shape["remote_parent"]:
                parent = SpanContext(0x1, 0x2, is_remote=True, trace_flags=TraceFlags(1))
                context = trace.set_span_in_context(trace.NonRecordingSpan(parent))
            links = [
                Link(SpanContext(t, s, is_remote=remote), attributes)
                for t, s, remote, attributes in shape["links"]
            ]
            span = tracer.start_span(
                shape["name"],
                context=context,
                kind=shape["kind"],
                attributes=shape["attributes"],
                links=links,
            )
            for name, attributes in shape["events"]:
                span.add_event(name, attributes)
            if shape["status"] is StatusCode.ERROR:
                span.set_status(Status(StatusCode.ERROR, shape["description"]))
            elif shape["status"] is StatusCode.OK:
                span.set_status(StatusCode.OK)
            span.end()

    spans = record(body, Resource.create(resource_values))
    assert_same(spans)
