"""``spans.start_span`` and ``spans.set_attributes`` give the span the SDK's methods give.

The same span is made both ways with the same ids (a deterministic id generator), under
samplers and limits of every kind, and the ReadableSpans the processors receive compared
field by field, attribute order included.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from otel_django import _compat
from otel_django.traces import spans

pytestmark = pytest.mark.smoke


class CountingIds(IdGenerator):
    def __init__(self) -> None:
        self._next = itertools.count(0x1000)

    def generate_span_id(self) -> int:
        return next(self._next)

    def generate_trace_id(self) -> int:
        return next(self._next) << 64 | 0xABCDEF

    def is_trace_id_random(self) -> bool:
        return True


ATTRIBUTES = {"http.request.method": "GET", "url.path": "/products/1/", "n": 3}
FINAL = {"http.response.status_code": 200, "http.route": "products/<int:pk>/"}


def _fields(span: ReadableSpan) -> tuple[Any, ...]:
    return (
        span.name,
        span.context,
        span.parent,
        span.kind,
        list((span.attributes or {}).items()),
        span.dropped_attributes,
        span.resource,
        span.instrumentation_scope,
        span.status.status_code,
        span.start_time,
    )


def _both_ways(
    sampler: Sampler, limits: SpanLimits | None = None, parent: SpanContext | None = None
) -> tuple[list[Any], list[Any]]:
    results = []
    for fast in (False, True):
        provider = TracerProvider(
            sampler=sampler,
            span_limits=limits,
            id_generator=CountingIds(),
            resource=Resource.create({"service.name": "t"}),
        )
        exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("otel_django", "1")
        context = trace.set_span_in_context(NonRecordingSpan(parent)) if parent else None
        made = []
        for kind in (SpanKind.SERVER, SpanKind.CLIENT):
            if fast:
                span = spans.start_span(tracer, "GET", context, kind, ATTRIBUTES, start_time=5)
                if span.is_recording():
                    spans.set_attributes(span, FINAL)
                    spans.set_attributes(span, {"n": 4})  # a key already set: the SDK's way
            else:
                span = tracer.start_span(
                    "GET", context=context, kind=kind, attributes=ATTRIBUTES, start_time=5
                )
                if span.is_recording():
                    span.set_attributes(FINAL)
                    span.set_attributes({"n": 4})
            made.append((type(span), span.get_span_context(), span.is_recording()))
            span.end(end_time=9)
        results.append([*made, *(_fields(s) for s in exporter.get_finished_spans())])
    return results[0], results[1]


def test_the_fast_path_is_taken_on_the_installed_sdk() -> None:
    tracer = TracerProvider().get_tracer("t")

    assert _compat.tracer_internals_available()
    assert _compat.tracer_internals(tracer) is not None


@pytest.mark.parametrize(
    "sampler",
    [ALWAYS_ON, ALWAYS_OFF, ParentBased(ALWAYS_ON), TraceIdRatioBased(0.5)],
    ids=["always_on", "always_off", "parent_based", "ratio"],
)
def test_same_span_as_the_sdk_under_every_sampler(sampler: Sampler) -> None:
    sdk, ours = _both_ways(sampler)

    assert ours == sdk


@pytest.mark.parametrize(
    "parent_flags", [TraceFlags(1), TraceFlags(0), TraceFlags(3)], ids=["sampled", "not", "random"]
)
def test_same_span_as_the_sdk_under_a_remote_parent(parent_flags: TraceFlags) -> None:
    parent = SpanContext(0x77, 0x88, is_remote=True, trace_flags=parent_flags)

    sdk, ours = _both_ways(ParentBased(ALWAYS_ON), parent=parent)

    assert ours == sdk


@pytest.mark.parametrize(
    "limits",
    [
        SpanLimits(max_span_attributes=2),
        SpanLimits(max_span_attributes=4),
        SpanLimits(max_span_attribute_length=3),
        SpanLimits(max_span_attributes=0),
    ],
    ids=["count below start", "count below finish", "length", "none at all"],
)
def test_same_span_as_the_sdk_when_limits_are_hit(limits: SpanLimits) -> None:
    sdk, ours = _both_ways(ALWAYS_ON, limits)

    assert ours == sdk
    attributes = [dict(fields[4]) for fields in ours[2:]]
    dropped = any(fields[5] for fields in ours[2:])
    truncated = any(a.get("url.path") == "/pr" for a in attributes)
    assert dropped or truncated


def test_a_disabled_tracer_gives_a_non_recording_span() -> None:
    provider = TracerProvider()
    tracer: Any = provider.get_tracer("t")
    tracer._tracer_config.is_enabled = False

    span = spans.start_span(tracer, "GET", None, SpanKind.SERVER, ATTRIBUTES)

    assert not span.is_recording()


def test_another_tracer_is_used_through_its_public_method() -> None:
    class Other(trace.NoOpTracer):
        calls = 0

        def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
            Other.calls += 1
            return super().start_span(*args, **kwargs)

    spans.start_span(Other(), "GET", None, SpanKind.SERVER, ATTRIBUTES)

    assert Other.calls == 1


def test_values_otel_django_did_not_promise_take_the_sdks_path() -> None:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")

    span = spans.start_span(tracer, "GET", None, SpanKind.SERVER, {"list": [1, 2]})  # type: ignore[dict-item]
    span.end()

    (finished,) = exporter.get_finished_spans()
    assert finished.attributes == {"list": (1, 2)}  # cleaned by the SDK: a tuple
