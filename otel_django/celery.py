"""Celery, when installed: the request id and the trace context travel from the caller into tasks.

* Publishing (``delay``/``apply_async``) adds the W3C headers (``traceparent``, ``tracestate``,
  ``baggage``) and ``otel_django_request_id`` to the task message.
* Running a task, the worker continues that trace with a CONSUMER span ``process <task name>``
  (unless opentelemetry-instrumentation-celery already makes one) and binds ``request_id``,
  ``task_id`` and ``task_name`` to the log context for exactly the task's run.
* Each task run is its own database-insight scope, as a request is: N+1 patterns are counted
  per run and reported on the task's span, which also gets the run's query count and total
  query duration (``otel_django.db.query_count``, ``otel_django.db.query_duration_ms``). An
  eager task runs inside its caller's span: its queries count towards the caller's.
* With otel_django's logging on, Celery leaves logging alone (a ``setup_logging`` receiver):
  task lines come out through the same JSON pipeline, and stdout is not redirected.

:func:`instrument_celery` is handed the process's query insight and error-message policy;
the receivers that need them are methods of :class:`TaskHooks`.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from . import __version__
from .config import Config
from .db import insight
from .db.errors import ErrorMessages
from .logging.request_id import is_safe_request_id
from .semconv import REQUEST_ID_ATTRIBUTE, error_type

logger = logging.getLogger("otel_django")

REQUEST_ID_HEADER = "otel_django_request_id"
_TRACE_HEADERS = ("traceparent", "tracestate", "baggage")
_STATE = "_otel_django_state"


def instrument_celery(
    config: Config, query_insight: insight.Insight | None, messages: ErrorMessages
) -> bool:
    """Connects the signal receivers (once: they have ``dispatch_uid``s); returns False when
    Celery is not installed."""
    try:
        from celery import signals  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        return False
    hooks = TaskHooks(query_insight, messages)
    signals.before_task_publish.connect(
        before_publish, weak=False, dispatch_uid="otel_django.before_publish"
    )
    signals.task_prerun.connect(hooks.task_prerun, weak=False, dispatch_uid="otel_django.prerun")
    signals.task_failure.connect(hooks.task_failure, weak=False, dispatch_uid="otel_django.failure")
    signals.task_postrun.connect(task_postrun, weak=False, dispatch_uid="otel_django.postrun")
    if config.logging.enabled:
        signals.setup_logging.connect(
            _keep_logging, weak=False, dispatch_uid="otel_django.setup_logging"
        )
    return True


def _keep_logging(**kwargs: Any) -> None:
    """Connected, it tells Celery that logging is configured (by otel_django, in Django's setup)."""


def _upstream_instrumented() -> bool:
    import importlib

    try:
        module = importlib.import_module("opentelemetry.instrumentation.celery")
    except ImportError:
        return False
    return bool(module.CeleryInstrumentor().is_instrumented_by_opentelemetry)


def before_publish(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    if not isinstance(headers, dict):
        return
    try:
        if "traceparent" not in headers:  # an instrumentor's producer span wins
            propagate.inject(headers)
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        if isinstance(request_id, str):
            headers.setdefault(REQUEST_ID_HEADER, request_id)
    except Exception:
        logger.debug("could not add trace headers to a task message", exc_info=True)


class _TaskState:
    __slots__ = ("context_token", "log_tokens", "scope_token", "span", "summary_span")

    def __init__(
        self,
        span: trace.Span | None,
        context_token: object,
        log_tokens: Any,
        scope_token: Any,
        summary_span: trace.Span | None = None,
    ) -> None:
        self.span = span
        self.context_token = context_token
        self.log_tokens = log_tokens
        self.scope_token = scope_token
        self.summary_span = summary_span  # the task's own span (ours or an instrumentor's)


class TaskHooks:
    """The receivers that need the process's query insight and error-message policy."""

    def __init__(self, query_insight: insight.Insight | None, messages: ErrorMessages) -> None:
        self.insight = query_insight
        self.messages = messages

    def task_prerun(self, task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
        if task is None:
            return
        try:
            request = task.request
            bound: dict[str, Any] = {"task_id": task_id, "task_name": task.name}
            request_id = request.get(REQUEST_ID_HEADER)
            if isinstance(request_id, str) and is_safe_request_id(request_id):
                bound["request_id"] = request_id
            span: trace.Span | None = None
            context_token: object = None
            # Eager tasks run inside the caller: its span and log context are already current.
            if not request.is_eager and not _upstream_instrumented():
                carrier = {k: v for k in _TRACE_HEADERS if isinstance(v := request.get(k), str)}
                parent = propagate.extract(carrier) if carrier else None
                attributes: dict[str, Any] = {
                    "messaging.system": "celery",
                    "messaging.operation.type": "process",
                    "messaging.operation.name": "process",
                    "messaging.destination.name": task.name,
                }
                if task_id:
                    attributes["messaging.message.id"] = task_id
                if "request_id" in bound:
                    attributes[REQUEST_ID_ATTRIBUTE] = bound["request_id"]
                tracer = trace.get_tracer("otel_django", __version__)
                span = tracer.start_span(
                    f"process {task.name}",
                    context=parent,
                    kind=SpanKind.CONSUMER,
                    attributes=attributes,
                )
                context_token = otel_context.attach(trace.set_span_in_context(span, parent))
            log_tokens = structlog.contextvars.bind_contextvars(**bound)
            current = trace.get_current_span()
            recording = current if current.is_recording() else None
            scope_token = insight.begin_request(recording, self.insight)
            summary_span = span if span is not None else None if request.is_eager else recording
            state = _TaskState(span, context_token, log_tokens, scope_token, summary_span)
            setattr(request, _STATE, state)
        except Exception:
            logger.debug("could not set up the task's trace and log context", exc_info=True)

    def task_failure(
        self, sender: Any = None, exception: BaseException | None = None, **kwargs: Any
    ) -> None:
        state = getattr(getattr(sender, "request", None), _STATE, None)
        if not isinstance(state, _TaskState) or state.span is None or exception is None:
            return
        attributes = self.messages.span_attributes(exception)
        state.span.record_exception(exception, attributes=attributes)
        state.span.set_attribute("error.type", error_type(exception))
        state.span.set_status(Status(StatusCode.ERROR))


def task_postrun(task: Any = None, **kwargs: Any) -> None:
    request = getattr(task, "request", None)
    state = getattr(request, _STATE, None)
    if not isinstance(state, _TaskState):
        return
    try:
        setattr(request, _STATE, None)
        scope = insight.end_request(state.scope_token)  # N+1 and summary: before the span ends
        target = state.summary_span
        if scope is not None and target is not None and target.is_recording():
            target.set_attributes(scope.summary())
        if state.span is not None:
            state.span.end()
        structlog.contextvars.reset_contextvars(**state.log_tokens)
        if state.context_token is not None:
            otel_context.detach(state.context_token)  # type: ignore[arg-type]
    except Exception:
        logger.debug("could not reset the task's context", exc_info=True)
