"""Celery tasks as N+1 scopes: one scope per task run, when Celery is installed.

``task_prerun`` opens the scope with the span current at that moment (the task's span when the
Celery instrumentation made one) and ``task_postrun`` reports and closes it. Receivers run in
the order they were connected: when upstream's Celery instrumentation ended the task span
before ``task_postrun`` reaches otel_django, the N+1 patterns are still logged and counted,
only the span event is skipped.
"""

from __future__ import annotations

import contextvars
import importlib.util
from typing import Any

from opentelemetry import trace

from . import insight

_tokens: dict[str, contextvars.Token[insight.RequestScope | None]] = {}
_MAX_OPEN = 10_000  # a task whose postrun never came must not leak memory forever
_installed = False


def _task_prerun(task_id: str | None = None, **kwargs: Any) -> None:
    if task_id is None:
        return
    if len(_tokens) >= _MAX_OPEN:
        _tokens.clear()
    span = trace.get_current_span()
    _tokens[task_id] = insight.begin_request(span if span.is_recording() else None)


def _task_postrun(task_id: str | None = None, **kwargs: Any) -> None:
    token = _tokens.pop(task_id, None) if task_id is not None else None
    if token is None:
        return
    insight.end_request(token)


def instrument() -> bool:
    """Connects to Celery's task signals if Celery is installed. Idempotent."""
    global _installed
    if _installed:
        return True
    if importlib.util.find_spec("celery") is None:
        return False
    signals: Any = importlib.import_module("celery.signals")  # typed Any: no stubs needed
    signals.task_prerun.connect(_task_prerun, weak=False, dispatch_uid="otel_django.db.prerun")
    signals.task_postrun.connect(_task_postrun, weak=False, dispatch_uid="otel_django.db.postrun")
    _installed = True
    return True
