"""Every private of the OpenTelemetry SDK and OTLP exporter that otel_django reads, in one place.

Checked against opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http
1.45.1 to 1.45.2 (``CHECKED``). Each access is verified once, on real objects, when first used;
where the installed version differs, the ``*_available()`` check is False and callers take
the public path (slower, same result). The tests in ``tests/traces/`` fail when an access no
longer works on the installed versions, so an upgrade is noticed, not silently slower.

What is read, and why:

* ``ReadableSpan._attributes`` (a ``BoundedAttributes``; its ``_dict`` and ``dropped``),
  ``ReadableSpan._events`` and ``ReadableSpan._links`` (``BoundedList``; their ``_dq`` and
  ``dropped``): the public properties copy each container on every access (``events``
  builds a tuple under a lock, ``attributes`` wraps a proxy that reads item by item),
  which costs the encoder more than encoding the span itself.
* ``Tracer._span_limits``, ``._instrumentation_scope``, ``._tracer_metrics``,
  ``._is_enabled``, the SDK's ``_Span`` class, and a recording span's ``_lock``,
  ``_end_time`` and ``_attributes`` (its ``_dict``, ``_immutable``, ``maxlen``,
  ``max_value_len``): ``spans.start_span`` and ``spans.set_attributes`` do what
  ``Tracer.start_span`` and ``Span.set_attributes`` do, storing attributes otel_django built
  itself without running them through the validation the SDK applies to foreign ones.
* ``OTLPSpanExporter._shutdown``, ``._metrics``, ``._max_request_size``, ``._client`` and
  ``opentelemetry.exporter.otlp.proto.http._common``'s size check: what upstream's
  ``export()`` does after encoding, so that only the encoding differs (see ``otlp_http``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from typing import Any, cast

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import ReadableSpan, Tracer
from opentelemetry.sdk.util import BoundedList

logger = logging.getLogger("otel_django.traces")

CHECKED = {
    "opentelemetry-sdk": ("1.45.1", "1.45.2"),
    "opentelemetry-exporter-otlp-proto-http": ("1.45.1", "1.45.2"),
}


def _version_checked(distribution: str) -> bool:
    try:
        version = metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return False
    low, high = CHECKED[distribution]
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
