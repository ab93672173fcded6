"""Starting and finishing otel_django's own spans without validating what it built itself.

The SDK's ``Tracer.start_span`` runs every attribute through ``BoundedAttributes``'
validation (type checks, copies, truncation), and ``Span.set_attributes`` again: about a
third of a span's cost, for attributes otel_django builds itself from strings and integers.
:func:`start_span` and :func:`set_attributes` do what the SDK does, step for step, and only
store such attributes directly where the SDK would have stored them unchanged:

* the tracer's sampler decides, with the attributes, the span kind and the parent context,
  and what the sampler returns is what the span holds (anything else than otel_django's own
  attributes takes the SDK's path);
* span limits: the direct store is used only while the attributes fit the limits unchanged
  (count and value length); otherwise the SDK's ``BoundedAttributes`` drops and truncates;
* the span is the SDK's own ``Span`` class, started through the tracer's span processors
  (``on_start``), ended by the SDK (``on_end`` with a ``ReadableSpan``), the tracer's
  enablement (tracer configurator) and its tracer metrics honoured.

Anything else (a tracer that is not the SDK's, an SDK whose internals differ from the
versions checked in ``otel_django._compat``) goes through the SDK's public methods unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.util.types import AttributeValue

from .. import _compat

AttributeValues = Mapping[str, AttributeValue]

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_SAMPLED_RANDOM = TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID)
_NOT_SAMPLED_RANDOM = TraceFlags(TraceFlags.DEFAULT | TraceFlags.RANDOM_TRACE_ID)
_VALID_TYPES = frozenset({str, int})


def fits(attributes: AttributeValues, count: int | None, length: int | None) -> bool:
    """Whether the SDK would store ``attributes`` unchanged: only strings and integers, at
    most ``count`` of them, strings of at most ``length`` characters (None: no limit)."""
    if not _VALID_TYPES.issuperset(map(type, attributes.values())):
        return False
    if count is not None and len(attributes) > count:
        return False
    return length is None or all(len(v) <= length for v in attributes.values() if type(v) is str)


def start_span(
    tracer: trace.Tracer,
    name: str,
    context: Context | None,
    kind: SpanKind,
    attributes: AttributeValues,
    start_time: int | None = None,
) -> trace.Span:
    """``tracer.start_span(name, context, kind, attributes, start_time=start_time)``."""
    internals = _compat.tracer_internals(tracer)
    if internals is None:
        return tracer.start_span(
            name, context=context, kind=kind, attributes=attributes, start_time=start_time
        )
    span_class, limits, scope, tracer_metrics, enabled = internals
    sdk_tracer: Any = tracer
    current = trace.get_current_span(context).get_span_context()
    if not enabled():
        return NonRecordingSpan(context=current)
    parent: SpanContext | None = current
    id_generator = sdk_tracer.id_generator
    if parent is None or not parent.is_valid:
        parent = None
        trace_id = id_generator.generate_trace_id()
    else:
        trace_id = parent.trace_id
    sampler = sdk_tracer.sampler
    result = sampler.should_sample(context, trace_id, name, kind, attributes, ())
    decision = result.decision
    sampled = decision.is_sampled()
    if parent is None:
        random_trace_id = id_generator.is_trace_id_random()
    else:
        random_trace_id = parent.trace_flags.random_trace_id
    if random_trace_id:
        flags = _SAMPLED_RANDOM if sampled else _NOT_SAMPLED_RANDOM
    else:
        flags = _SAMPLED if sampled else _NOT_SAMPLED
    span_context = SpanContext(
        trace_id,
        id_generator.generate_span_id(),
        is_remote=False,
        trace_flags=flags,
        trace_state=result.trace_state,
    )
    record_end_metrics = tracer_metrics.start_span(parent, decision)
    if not decision.is_recording():
        return NonRecordingSpan(context=span_context)
    returned = result.attributes
    direct = returned == attributes and fits(
        attributes, limits.max_span_attributes, limits.max_span_attribute_length
    )
    span: Any = span_class(
        name=name,
        context=span_context,
        parent=parent,
        sampler=sampler,
        resource=sdk_tracer.resource,
        attributes=None if direct else returned,
        span_processor=sdk_tracer.span_processor,
        kind=kind,
        links=(),
        instrumentation_info=sdk_tracer.instrumentation_info,
        limits=limits,
        instrumentation_scope=scope,
        record_end_metrics=record_end_metrics,
    )
    if direct:
        _compat.store_attributes(span, attributes)
    span.start(start_time=start_time, parent_context=context)
    started: trace.Span = span
    return started


def set_attributes(span: trace.Span, attributes: AttributeValues) -> None:
    """``span.set_attributes(attributes)`` for a recording span of :func:`start_span`."""
    if not _compat.set_attributes_directly(span, attributes, fits):
        span.set_attributes(attributes)
