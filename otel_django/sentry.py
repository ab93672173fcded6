"""Sentry, linked to OpenTelemetry traces, when SENTRY_DSN is set and sentry-sdk is installed.

* ``sentry_sdk.init`` with the Django integration, ``send_default_pii=False``, environment and
  release from the resource (``deployment.environment.name``, ``service.version``), and no
  Sentry tracing (``traces_sample_rate=None``): OpenTelemetry does the tracing.
* Every event carries the current OTel trace and span ids in ``contexts.trace`` (Sentry's
  "trace" view then opens the OTel trace id) and the ``request_id`` tag; the query string,
  form data, headers and breadcrumb data Sentry attaches are redacted like log lines, and
  frame locals are not sent (``include_local_variables=False``).
* Database errors' messages, which quote values, are withheld from exception values (type,
  module and frames stay; ``RECORD_DATABASE_ERROR_MESSAGES`` keeps them), and the SQL of query
  breadcrumbs has its literals replaced by ``?``, as on spans.
* Propagation stays W3C: Sentry's ``OTLPIntegration`` is used for its trace linking only
  (``setup_propagator=False``: it would replace the global propagator with one that writes
  ``sentry-trace`` and drops ``traceparent``). A propagator that adds ``sentry-trace`` is
  chained after the existing ones, so services that only speak Sentry continue the trace too.

The DSN is validated with the configuration (``config.py``); :func:`setup_sentry` is handed
the process's redactor and error-message policy.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import structlog
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)

from . import _compat
from .config import Config
from .db.errors import WITHHELD, ErrorMessages, scrub
from .db.sql import describe
from .redaction import Redactor

logger = logging.getLogger("otel_django")

SENTRY_TRACE_HEADER = "sentry-trace"


def setup_sentry(
    config: Config,
    redactor: Redactor | None = None,
    messages: ErrorMessages | None = None,
    **options: Any,
) -> bool:
    """Initialises sentry-sdk if configured (the DSN is validated with the configuration);
    returns whether it did. ``redactor`` and ``messages`` are the process's (default: built
    from ``config``); ``options`` are passed to ``sentry_sdk.init`` over the defaults (a
    ``transport`` in tests, say)."""
    if not config.sentry.dsn:
        return False
    try:
        import sentry_sdk
        from sentry_sdk.integrations.django import DjangoIntegration
    except ImportError:
        logger.warning(
            "SENTRY_DSN is set but sentry-sdk is not installed: errors are not sent "
            "to Sentry. Install otel_django[sentry]."
        )
        return False
    redactor = redactor or Redactor(config.logging.redact_keys)
    messages = messages or ErrorMessages.from_config(config)
    integrations: list[Any] = [DjangoIntegration()]
    linking = _otlp_linking_integration()
    if linking is not None:
        integrations.append(linking)
    init_options: dict[str, Any] = {
        "dsn": config.sentry.dsn,
        "integrations": integrations,
        "environment": config.service.environment,
        "release": config.service.version,
        "traces_sample_rate": None,
        # Frame locals hold whatever the code had at hand: request objects with their query
        # strings, passwords being checked. Log lines never carry them; neither do events.
        "include_local_variables": False,
    }
    if importlib.util.find_spec("sentry_sdk.data_collection") is None:
        # Newer SDKs deprecate the flag: without it (or ``data_collection``) they behave as
        # with ``send_default_pii=False``.
        init_options["send_default_pii"] = False
    init_options.update(options)
    user_before_send = init_options.get("before_send")
    own = _chain(link_events(redactor), withhold_messages(messages))
    init_options["before_send"] = own if user_before_send is None else _chain(own, user_before_send)
    sentry_sdk.init(**init_options)
    install_sentry_trace_propagator()
    return True


def _otlp_linking_integration() -> Any:
    try:
        from sentry_sdk.integrations import DidNotEnable
        from sentry_sdk.integrations.otlp import OTLPIntegration
    except ImportError:  # sentry-sdk before OTLPIntegration: link_events alone links
        return None
    try:
        return OTLPIntegration(setup_otlp_traces_exporter=False, setup_propagator=False)
    except DidNotEnable:
        return None


def _chain(first: Callable[..., Any], then: Callable[..., Any]) -> Callable[..., Any]:
    def before_send(event: dict[str, Any], hint: dict[str, Any]) -> Any:
        linked = first(event, hint)
        return None if linked is None else then(linked, hint)

    return before_send


def link_events(redactor: Redactor) -> Callable[..., Any]:
    """``before_send``: adds the OTel trace and span ids and the request id, and redacts what
    the event carries. It runs after every event processor, the request extractors included."""

    def link_event(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        try:
            _link(event)
        except Exception:  # an event without links beats no event
            logger.debug("could not link a Sentry event to its trace", exc_info=True)
        try:
            _redact_event(event, redactor)
        except Exception:  # fail closed: without what could not be redacted
            for key in ("request", "extra", "breadcrumbs"):
                event.pop(key, None)
        return event

    return link_event


def _link(event: dict[str, Any]) -> None:
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        trace_context = event.setdefault("contexts", {}).setdefault("trace", {})
        trace_context["trace_id"] = format(span_context.trace_id, "032x")
        trace_context["span_id"] = format(span_context.span_id, "016x")
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if request_id is not None:
        event.setdefault("tags", {})["request_id"] = request_id


def _redact_event(event: dict[str, Any], redactor: Redactor) -> None:
    """Sentry's scrubber goes by key and one level deep; this uses the log redactor, nested."""
    request = event.get("request")
    if isinstance(request, dict):
        query = request.get("query_string")
        if isinstance(query, str) and query:
            request["query_string"] = redactor.query_string(query)
        for key in ("data", "headers"):
            value = request.get(key)
            if isinstance(value, Mapping):
                request[key] = redactor.mapping(value)
        if isinstance(request.get("headers"), Mapping):
            request["headers"] = redactor.headers(request["headers"])
        request.pop("cookies", None)
    extra = event.get("extra")
    if isinstance(extra, Mapping):
        event["extra"] = redactor.mapping(extra)
    breadcrumbs = event.get("breadcrumbs")
    values = breadcrumbs.get("values") if isinstance(breadcrumbs, Mapping) else breadcrumbs
    for crumb in values if isinstance(values, list) else ():
        if not isinstance(crumb, dict):
            continue
        if isinstance(crumb.get("data"), Mapping):
            crumb["data"] = redactor.mapping(crumb["data"])
        if crumb.get("category") == "query" and isinstance(crumb.get("message"), str):
            # The SQL of Sentry's query breadcrumbs, its literals as spans show them: "?".
            crumb["message"] = describe(crumb["message"]).text


def withhold_messages(messages: ErrorMessages) -> Callable[..., Any]:
    """``before_send``: the messages ``messages`` withholds (database errors') out of the
    event's exceptions, chained ones included; their type, module and frames stay."""

    def before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        exc_info = hint.get("exc_info")
        exception = exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) == 3 else None
        if not isinstance(exception, BaseException):
            return event
        try:
            withheld = messages.withheld(exception)
        except Exception:  # fail closed: no message rather than one that should not be there
            withheld = None
        if withheld == []:
            return event
        # Sentry names each exception by module and qualified name (builtins: no module).
        texts: dict[tuple[object, object], str] = {
            (type(e).__module__, type(e).__qualname__): text for e, text in withheld or ()
        }
        for value in _exception_values(event):
            if withheld is None:
                value["value"] = WITHHELD
                continue
            text = texts.get((value.get("module") or "builtins", value.get("type")))
            if text is not None:
                value["value"] = text
        if withheld:  # a log entry (Celery's "Task … raised unexpected: …") quotes it too
            for key in ("logentry", "message", "extra", "breadcrumbs"):
                if key in event:
                    event[key] = scrub(event[key], withheld)
        return event

    return before_send


def _exception_values(event: dict[str, Any]) -> list[dict[str, Any]]:
    exceptions = event.get("exception")
    values = exceptions.get("values") if isinstance(exceptions, Mapping) else None
    return [v for v in values if isinstance(v, dict)] if isinstance(values, list) else []


class SentryTracePropagator(TextMapPropagator):
    """Writes ``sentry-trace`` for the current OTel span; reads nothing (W3C does)."""

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        from opentelemetry.context import get_current

        return context if context is not None else get_current()

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        span_context = trace.get_current_span(context).get_span_context()
        if not span_context.is_valid:
            return
        sampled = "1" if span_context.trace_flags.sampled else "0"
        setter.set(
            carrier,
            SENTRY_TRACE_HEADER,
            f"{span_context.trace_id:032x}-{span_context.span_id:016x}-{sampled}",
        )

    @property
    def fields(self) -> set[str]:
        return {SENTRY_TRACE_HEADER}


def _propagators(propagator: TextMapPropagator) -> Iterable[TextMapPropagator]:
    if isinstance(propagator, CompositePropagator):
        return _compat.composite_members(propagator)
    return [propagator]


def install_sentry_trace_propagator() -> None:
    """Chains :class:`SentryTracePropagator` after the global propagator(s), once."""
    current = propagate.get_global_textmap()
    existing = _propagators(current)
    if any(isinstance(p, SentryTracePropagator) for p in existing):
        return
    propagate.set_global_textmap(CompositePropagator([*existing, SentryTracePropagator()]))
