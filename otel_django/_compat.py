"""Every access otel_django makes to another library's private API, in one place.

Each section below is headed by the library it reaches into and the versions its accesses
were checked against; ``tests/test_compat.py`` (and the tests each section names) fail when
one no longer works on the installed versions, so an upgrade is noticed. Where an access is
verified at run time (a ``*_available()`` check), a version that differs takes the public path
(slower, same result).

Sections: opentelemetry-sdk tracing and opentelemetry-exporter-otlp-proto-http (the fast span
and export path); opentelemetry-sdk metrics (cardinality limit before 1.45.2, the gauge class,
exporter preferences); opentelemetry-sdk configuration and sampling; opentelemetry-api
propagators and context; the OTLP exporters; SQLAlchemy; Django; CPython's ``traceback`` and
``sys``; structlog's context variables.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import logging
import sys
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from typing import Any, cast

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import ReadableSpan, Tracer
from opentelemetry.sdk.util import BoundedList

logger = logging.getLogger("otel_django.traces")
metrics_logger = logging.getLogger("otel_django.metrics")

# === opentelemetry-sdk tracing, opentelemetry-exporter-otlp-proto-http ====================
# Checked against 1.45.1-1.45.2 (TRACES_CHECKED), verified on real objects when first used;
# tests/traces/test_spans.py, test_otlp_http.py and test_encoding.py fail when they break.
#
# * ReadableSpan._attributes (a BoundedAttributes; its _dict and dropped), ReadableSpan._events
#   and ._links (BoundedList; their _dq and dropped): the public properties copy each
#   container on every access, which costs the encoder more than encoding the span itself.
# * Tracer._span_limits, ._instrumentation_scope, ._tracer_metrics, ._is_enabled, the SDK's
#   _Span class, and a recording span's _lock, _end_time and _attributes (its _dict,
#   _immutable, maxlen, max_value_len): spans.start_span and spans.set_attributes do what
#   Tracer.start_span and Span.set_attributes do, storing attributes otel_django built itself
#   without the validation the SDK applies to foreign ones.
# * OTLPSpanExporter._shutdown, ._metrics, ._max_request_size, ._client and
#   opentelemetry.exporter.otlp.proto.http._common's size check: what upstream's export()
#   does after encoding, so that only the encoding differs (traces/otlp_http.py).

TRACES_CHECKED = {
    "opentelemetry-sdk": ("1.45.1", "1.45.2"),
    "opentelemetry-exporter-otlp-proto-http": ("1.45.1", "1.45.2"),
}


def _version_checked(distribution: str) -> bool:
    try:
        version = metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return False
    low, high = TRACES_CHECKED[distribution]
    return _as_tuple(low) <= _as_tuple(version) <= _as_tuple(high)


def _as_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split("."):
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits or 0))
        if digits != part:
            break
    return tuple(parts)


# --- ReadableSpan containers --------------------------------------------------------------


@functools.cache
def span_containers_available() -> bool:
    """Whether ReadableSpan keeps its containers where :func:`span_containers` reads them."""
    if not _version_checked("opentelemetry-sdk"):
        return False
    try:
        kept = BoundedAttributes(None, {"a": 1}, immutable=True)
        full = BoundedAttributes(0, {"a": 1}, immutable=True)  # drops without a warning
        events: Any = BoundedList(1)
        events.extend(("x", "y"))
        span = ReadableSpan("probe", attributes=kept, events=events, links=events)
        dropping = ReadableSpan("probe", attributes=full)
        return span_containers(span) == ({"a": 1}, 0, ("y",), 1, ("y",), 1) and (
            span_containers(dropping) == ({}, 1, (), 0, (), 0)
        )
    except Exception:
        logger.debug(
            "ReadableSpan internals differ; the encoder uses the public API", exc_info=True
        )
        return False


def span_containers(
    span: ReadableSpan,
) -> tuple[Mapping[str, Any], int, Sequence[Any], int, Sequence[Any], int]:
    """``(attributes, dropped_attributes, events, dropped_events, links, dropped_links)``
    without copying: the span is ended, so none of them changes any more."""
    attributes: Any = span._attributes
    if type(attributes) is BoundedAttributes:
        attribute_dict, dropped_attributes = attributes._dict, attributes.dropped
    else:
        attribute_dict, dropped_attributes = (attributes or {}), span.dropped_attributes
    events: Any = span._events
    if type(events) is BoundedList:
        event_items, dropped_events = cast(Any, events)._dq, events.dropped
    else:
        event_items, dropped_events = span.events, span.dropped_events
    links: Any = span._links
    if type(links) is BoundedList:
        link_items, dropped_links = cast(Any, links)._dq, links.dropped
    else:
        link_items, dropped_links = span.links, span.dropped_links
    return (
        attribute_dict,
        dropped_attributes,
        tuple(event_items) if event_items else (),
        dropped_events,
        tuple(link_items) if link_items else (),
        dropped_links,
    )


def public_span_containers(
    span: ReadableSpan,
) -> tuple[Mapping[str, Any], int, Sequence[Any], int, Sequence[Any], int]:
    """The same through the public properties."""
    return (
        span.attributes or {},
        span.dropped_attributes,
        span.events,
        span.dropped_events,
        span.links,
        span.dropped_links,
    )


# --- Tracer.start_span and Span.set_attributes -------------------------------------------

TracerInternals = tuple[type, Any, Any, Any, Callable[[], bool]]
_tracers: dict[int, tuple[Any, TracerInternals | None]] = {}


def tracer_internals(tracer: Any) -> TracerInternals | None:
    """``(span class, span limits, instrumentation scope, tracer metrics, is_enabled)`` of an
    SDK tracer, or None for any other tracer or when the SDK's internals differ."""
    entry = _tracers.get(id(tracer))
    if entry is not None and entry[0] is tracer:
        return entry[1]
    internals = None
    if type(tracer) is Tracer and tracer_internals_available():
        try:
            internals = (
                sdk_trace._Span,
                tracer._span_limits,
                tracer._instrumentation_scope,
                tracer._tracer_metrics,
                tracer._is_enabled,
            )
        except AttributeError:
            internals = None
    if len(_tracers) >= 64:
        _tracers.clear()
    _tracers[id(tracer)] = (tracer, internals)
    return internals


@functools.cache
def tracer_internals_available() -> bool:
    """Whether the SDK's Tracer, Span and BoundedAttributes are as ``spans`` expects."""
    if not _version_checked("opentelemetry-sdk"):
        return False
    try:
        provider = sdk_trace.TracerProvider(shutdown_on_exit=False)
        tracer: Any = provider.get_tracer("otel_django.probe")
        span: Any = tracer.start_span("probe")
        return (
            isinstance(sdk_trace._Span, type)
            and issubclass(sdk_trace._Span, sdk_trace.Span)
            and callable(tracer._is_enabled)
            and callable(tracer._tracer_metrics.start_span)
            and tracer._instrumentation_scope is not None
            and hasattr(tracer._span_limits, "max_span_attribute_length")
            and type(span._attributes) is BoundedAttributes
            and isinstance(span._attributes._dict, dict)
            and span._attributes._immutable is False
            and span._end_time is None
            and hasattr(span._lock, "acquire")
        )
    except Exception:
        logger.debug("SDK tracer internals differ; spans start through the SDK", exc_info=True)
        return False


def store_attributes(span: Any, attributes: Mapping[str, Any]) -> None:
    """Into a span just built with no attributes, as ``BoundedAttributes`` would store
    attributes that need no cleaning and fit its limits."""
    span._attributes._dict.update(attributes)


def set_attributes_directly(
    span: Any,
    attributes: Mapping[str, Any],
    fits: Callable[[Mapping[str, Any], int | None, int | None], bool],
) -> bool:
    """``span.set_attributes(attributes)`` when the SDK would store them unchanged (new keys,
    within the limits); False, having done nothing, when the SDK's method must do it."""
    if type(span) is not sdk_trace._Span or not tracer_internals_available():
        return False
    with span._lock:
        stored = span._attributes
        if span._end_time is not None or type(stored) is not BoundedAttributes:
            return False
        current = stored._dict
        count = stored.maxlen
        if stored._immutable or not current.keys().isdisjoint(attributes):
            return False
        room = None if count is None else count - len(current)
        if not fits(attributes, room, stored.max_value_len):
            return False
        current.update(attributes)
        return True


# --- OTLPSpanExporter's send path ---------------------------------------------------------


@functools.cache
def exporter_send_path_available() -> bool:
    """Whether upstream's OTLPSpanExporter has the steps :func:`send` repeats."""
    if not _version_checked("opentelemetry-exporter-otlp-proto-http"):
        return False
    try:
        from opentelemetry.exporter.otlp.proto.http import _common
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint="http://127.0.0.1:9/v1/traces")
        try:
            return (
                isinstance(exporter._shutdown, bool)
                and isinstance(exporter._max_request_size, int)
                and callable(exporter._client.export)
                and callable(exporter._metrics.export_operation)
                and callable(_common._is_request_too_large)
                and issubclass(_common.RequestPayloadTooLargeError, Exception)
            )
        finally:
            exporter.shutdown()  # type: ignore[no-untyped-call]
    except Exception:
        logger.debug(
            "OTLPSpanExporter internals differ; export encodes with the SDK", exc_info=True
        )
        return False


def send(exporter: Any, payload: bytes, span_count: int) -> bool:
    """What upstream's ``OTLPSpanExporter.export`` does once it has the serialized request:
    the shutdown check, the exporter metrics (``otel.sdk.exporter.*``), the size limit,
    then the HTTP client (retries, compression, headers, timeout). Whether it was sent."""
    from opentelemetry.exporter.otlp.proto.http._common import (
        RequestPayloadTooLargeError,
        _is_request_too_large,
    )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import _logger
    from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE

    if exporter._shutdown:
        _logger.warning("Exporter already shutdown, ignoring batch")
        return False
    with exporter._metrics.export_operation(span_count) as result:
        limit = exporter._max_request_size
        if _is_request_too_large(payload, limit):
            _logger.warning(
                "Dropping span batch: serialized size %d bytes exceeds max_request_size %d bytes.",
                len(payload),
                limit,
            )
            result.error = RequestPayloadTooLargeError(
                f"Serialized span request size {len(payload)} bytes exceeds max_request_size "
                f"{limit} bytes."
            )
            return False
        sent = exporter._client.export(payload)
        if not sent.success:
            result.error = sent.error
            result.error_attrs = (
                {HTTP_RESPONSE_STATUS_CODE: sent.status_code}
                if sent.status_code is not None
                else None
            )
            return False
    return True


# === opentelemetry-sdk metrics ===========================================================
# Checked against opentelemetry-sdk 1.45.1 (installed) and 1.45.2 (read: it keeps _Gauge and
# the exporter preferences, and has its own cardinality limit, so the backport is not used
# there); tests/test_compat.py.


def sdk_gauge_class() -> type:
    """The SDK's synchronous gauge class, the key ``MetricReader(cardinality_limits=…)`` and
    ``preferred_temporality`` take for gauges: the SDK exports it only as ``_Gauge``."""
    from opentelemetry.sdk.metrics import _Gauge

    return _Gauge


_backport_lock = threading.Lock()


def backport_cardinality_limit(stream_limit: int, overflow: Mapping[str, Any]) -> bool:
    """For SDKs before 1.45.2, whose ``MetricReader`` takes no ``cardinality_limits``: the
    same rule for every SDK metric stream of the process. A stream holding ``stream_limit``
    attribute sets records a measurement with a new one under ``overflow``, as
    1.45.2's ``_ViewInstrumentMatch`` does; while below it, one ``len()`` per measurement.
    The limit is kept on the SDK's class (a one-item list the wrapper reads), the method
    wrapped once. False when this SDK's
    ``_ViewInstrumentMatch`` is not the one known (then there is no limit, and a warning)."""
    try:
        from opentelemetry.sdk.metrics._internal import _view_instrument_match as vim
    except ImportError:
        metrics_logger.warning(
            "this opentelemetry-sdk has no known metric stream class: no cardinality limit"
        )
        return False
    cls: Any = vim._ViewInstrumentMatch
    key_of: Callable[[Any], Any] | None = getattr(vim, "_hash_attributes", None)
    known = (
        key_of is not None
        and callable(getattr(cls, "consume_measurement", None))
        and "_attributes_aggregation" in cls.__init__.__code__.co_names
    )
    if not known:
        metrics_logger.warning(
            "this opentelemetry-sdk is not the one otel_django knows: no cardinality limit"
        )
        return False
    assert key_of is not None
    with _backport_lock:
        current: list[int] | None = getattr(cls, "_otel_django_stream_limit", None)
        if current is not None:
            current[0] = stream_limit
            return True
        limit = [stream_limit]
        original: Callable[..., None] = cls.consume_measurement
        overflow_attributes = dict(overflow)  # the SDK copies a measurement's attributes
        overflow_key = key_of(overflow_attributes)

        def consume_measurement(
            self: Any, measurement: Any, should_sample_exemplar: bool = True
        ) -> None:
            aggregations = self._attributes_aggregation
            if len(aggregations) < limit[0]:
                return original(self, measurement, should_sample_exemplar)
            attributes = dict(measurement.attributes or {})
            keys = self._view._attribute_keys
            if keys is not None:
                attributes = {k: v for k, v in attributes.items() if k in keys}
            key = key_of(attributes)
            if key not in aggregations and key != overflow_key:
                measurement = dataclasses.replace(measurement, attributes=overflow_attributes)
            return original(self, measurement, should_sample_exemplar)

        cls._otel_django_original = original
        cls._otel_django_stream_limit = limit
        cls.consume_measurement = consume_measurement
    return True


def exporter_preferences(exporter: Any) -> tuple[Any, Any]:
    """The temporality and aggregation an exporter asked for in ``MetricExporter.__init__``:
    kept in private attributes, which ``PeriodicExportingMetricReader`` itself reads."""
    return (
        getattr(exporter, "_preferred_temporality", None),
        getattr(exporter, "_preferred_aggregation", None),
    )


# === opentelemetry-sdk configuration and sampling ========================================
# Checked against opentelemetry-sdk 1.45.1 (installed) and 1.45.2 (read); tests/test_compat.py.


def base_configurator() -> type:
    """The base of ``opentelemetry_configurator`` entry points, ``_BaseConfigurator``: the
    SDK's own configurator derives from it and ``opentelemetry-instrument`` calls its
    ``configure``."""
    from opentelemetry.sdk._configuration import _BaseConfigurator

    return _BaseConfigurator


def parent_based_unsampled_delegates(sampler: Any) -> tuple[Any, Any]:
    """A ``ParentBased`` sampler's delegates for a local and a remote unsampled parent."""
    return (
        getattr(sampler, "_local_parent_not_sampled", None),
        getattr(sampler, "_remote_parent_not_sampled", None),
    )


# === opentelemetry-api propagators =======================================================
# Checked against opentelemetry-api 1.45.1; tests/test_compat.py.


def composite_members(propagator: Any) -> list[Any]:
    """The propagators a ``CompositePropagator`` chains, in order (it has no public view)."""
    return list(propagator._propagators)


# === OTLP exporters (opentelemetry-exporter-otlp-proto-http and -grpc) ===================
# Checked against 1.45.1; tests/test_compat.py.

# The OTLP log exporters are published only in ``_log_exporter`` modules.
OTLP_LOG_EXPORTERS = {
    "otlp_proto_http": "opentelemetry.exporter.otlp.proto.http._log_exporter:OTLPLogExporter",
    "otlp_proto_grpc": "opentelemetry.exporter.otlp.proto.grpc._log_exporter:OTLPLogExporter",
}


def exporter_endpoint(exporter: object) -> str | None:
    """Where an OTLP exporter (HTTP or gRPC) sends, from its private ``_endpoint``."""
    endpoint = getattr(exporter, "_endpoint", None)
    return endpoint if isinstance(endpoint, str) and endpoint else None


# === SQLAlchemy ==========================================================================
# Checked against SQLAlchemy 2.0.58 (QueuePool); tests/test_compat.py.


def pool_max_overflow(pool: Any) -> int | None:
    """A ``QueuePool``'s ``max_overflow``, which it keeps only as ``_max_overflow``."""
    overflow = getattr(pool, "_max_overflow", None)
    return overflow if isinstance(overflow, int) and overflow >= 0 else None


# === Django ==============================================================================
# Checked against Django 5.2.19, 6.0.10 and 6.1.3 (PostgreSQL backend); tests/test_compat.py.


def psycopg_pool(wrapper_class: Any, alias: str) -> Any:
    """The psycopg pool the PostgreSQL backend built for ``alias``, if any: kept in the
    backend class's ``_connection_pools`` (Django 5.1+); reading it never creates one, as the
    public ``pool`` property would."""
    return getattr(wrapper_class, "_connection_pools", {}).get(alias)


# === CPython traceback ===================================================================
# Checked against CPython 3.11, 3.12 and 3.13; tests/test_compat.py and
# tests/db/test_error_messages.py.


def replace_exception_text(node: traceback.TracebackException, text: str) -> bool:
    """Sets the message a ``TracebackException`` shows (its ``_str``) and drops its notes;
    False, having done nothing, when it keeps no such message."""
    if not isinstance(getattr(node, "_str", None), str):
        return False
    node._str = text  # type: ignore[attr-defined]
    node.__notes__ = None
    return True


# === opentelemetry-api context ===========================================================
# Checked against opentelemetry-api 1.45.1; tests/test_compat.py.


def current_span_key() -> str | None:
    """The context key under which the API keeps the current span (``_SPAN_KEY``): reading
    the context directly skips ``get_current_span()``'s check of the span against an ABC.
    None when the API keeps it elsewhere (then callers use ``get_current_span()``)."""
    from opentelemetry.trace import propagation

    key = getattr(propagation, "_SPAN_KEY", None)
    return key if isinstance(key, str) else None


# === CPython sys =========================================================================
# Checked against CPython 3.11, 3.12 and 3.13 (a documented implementation detail).

# The caller's frame without inspect.currentframe()'s extra call: db.insight runs it per query.
getframe = sys._getframe


# === structlog ===========================================================================
# structlog.contextvars keeps one ContextVar per key ever bound, named "structlog_<key>"
# (its public STRUCTLOG_KEY_PREFIX), in the private module dict ``_CONTEXT_VARS``. Reading it
# lets the pipeline's merge_contextvars skip copying the whole context
# (otel_django.logging.processors). Checked against structlog 26.1 (pyproject's floor: 24.1);
# tests/test_compat_structlog.py fails when it breaks.


def structlog_context_variables() -> dict[str, contextvars.ContextVar[Any]] | None:
    """structlog's own dict of its context variables, or None where it keeps them elsewhere."""
    import structlog.contextvars

    variables = getattr(structlog.contextvars, "_CONTEXT_VARS", None)
    return variables if isinstance(variables, dict) else None
