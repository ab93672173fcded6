"""Query insight: slow queries and N+1 patterns, reported on spans and in logs.

The query observers (``db/django.py``, ``db/sqlalchemy.py``) call :meth:`Insight.count` for
every query and :meth:`Insight.slow_query` for the slow ones. Counting is one dict increment
and one comparison; everything else (walking the stack, logging, EXPLAIN) happens only for a
slow query or once per N+1 pattern.

A scope (one HTTP request, one Celery task) collects query shapes. The N+1 patterns it found
are reported when it ends, with their final counts: one ``n_plus_one`` event on the scope's
span, one warning log line and one counter increment per pattern.

A scope also sums up its queries, failed ones included: how many ran and how long they took
(``queries``, ``query_duration_s``), which the middleware puts on the server span, the
access-log line and ``otel_django.db.queries_per_request``, and the Celery hooks on the task's
span. A scope opened inside another (an eager task in a request) adds its sums to the outer
one when it ends.

The process's :class:`Insight` (thresholds from ``config.db``, its counters, the EXPLAIN
limiter) is built once by the runtime and handed to the observers, the middleware and the
Celery hooks; a scope is opened with the insight that reports its N+1 patterns.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any

import structlog
from opentelemetry import metrics
from opentelemetry.trace import Span

from .._compat import getframe
from ..config import DbConfig
from ..redaction import REDACTED, Redactor
from .sql import QueryDescription

SLOW = "otel_django.db.slow"
DURATION_MS = "otel_django.db.duration_ms"
EXPLAIN = "otel_django.db.explain"
COUNT = "otel_django.db.count"
QUERY_COUNT = "otel_django.db.query_count"  # queries of one request or task
QUERY_DURATION_MS = "otel_django.db.query_duration_ms"  # their total duration
SLOW_QUERY_EVENT = "slow_query"
N_PLUS_ONE_EVENT = "n_plus_one"

PARAMETER_MAX_LENGTH = 256
PARAMETERS_MAX = 32
SHAPES_PER_SCOPE = 2048  # distinct query shapes tracked per request; more are not counted
EXPLAIN_SHAPES = 1024  # query shapes whose last EXPLAIN time is remembered

# Top-level modules whose frames are never "the code that issued the query": the libraries
# between a view and its query, and the servers (and their event loops) that call the view.
# fmt: off
LIBRARY_MODULES = frozenset({
    "django", "sqlalchemy", "otel_django", "asgiref", "opentelemetry", "wrapt", "threading",
    "contextlib", "concurrent", "functools", "psycopg", "psycopg2", "sqlite3", "sentry_sdk",
    "celery", "kombu", "billiard", "debug_toolbar", "runpy", "importlib",
    "gunicorn", "uvicorn", "granian", "uwsgi", "uwsgidecorators", "waitress", "daphne",
    "hypercorn", "twisted", "gevent", "eventlet", "werkzeug", "wsgiref", "socketserver",
    "asyncio",
})
# fmt: on

logger = logging.getLogger("otel_django.db")
log = structlog.get_logger("otel_django.db")

Explain = Callable[[float], str | None]
"""Runs EXPLAIN for the query just observed, within the given milliseconds; never raises."""


class Location:
    __slots__ = ("file", "function", "line")

    def __init__(self, file: str, line: int, function: str) -> None:
        self.file = file
        self.line = line
        self.function = function

    def attributes(self) -> dict[str, str | int]:
        return {
            "code.file.path": self.file,
            "code.line.number": self.line,
            "code.function.name": self.function,
        }


_STDLIB = tuple({sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]})
_THIRD_PARTY = (f"{os.sep}site-packages{os.sep}", f"{os.sep}dist-packages{os.sep}")


def _script_directories() -> frozenset[str]:
    """Where installers put console scripts (``bin/gunicorn``, ``bin/celery``): the wrappers
    there (``sys.exit(run())``) are the servers' entry points, never application code."""
    found = {os.path.dirname(os.path.abspath(sys.executable)), sysconfig.get_path("scripts")}
    with contextlib.suppress(KeyError):  # a platform without a user scheme
        found.add(sysconfig.get_path("scripts", f"{os.name}_user"))
    return frozenset(os.path.normcase(os.path.abspath(d)) for d in found)


_SCRIPT_DIRECTORIES = _script_directories()


def _is_console_script(filename: str) -> bool:
    directory = os.path.dirname(os.path.abspath(filename))
    if directory.lower().endswith(".exe"):  # Windows: Scripts\gunicorn.exe\__main__.py
        directory = os.path.dirname(directory)
    return os.path.normcase(directory) in _SCRIPT_DIRECTORIES


def caller_location(frame: FrameType | None = None) -> Location | None:
    """The innermost frame of application code that led to this call.

    Frames of Django, SQLAlchemy, otel_django and their plumbing, of the server (gunicorn,
    uvicorn …) and of console-script wrappers (``bin/gunicorn``) are never it. Among the
    others, the innermost one outside installed packages and the standard library wins (a
    view, not the serializer library it called); failing that, the innermost one at all.
    """
    frame = frame if frame is not None else getframe(1)
    fallback: FrameType | None = None
    while frame is not None:
        module = frame.f_globals.get("__name__")
        if not isinstance(module, str):
            module = ""
        filename = frame.f_code.co_filename
        if (
            module.partition(".")[0] not in LIBRARY_MODULES
            and not filename.startswith("<")
            and not (module == "__main__" and _is_console_script(filename))
        ):
            if not filename.startswith(_STDLIB) and not any(p in filename for p in _THIRD_PARTY):
                return _location(frame, module)
            if fallback is None:
                fallback = frame
        frame = frame.f_back
    if fallback is None:
        return None
    module = fallback.f_globals.get("__name__")
    return _location(fallback, module if isinstance(module, str) else "")


def _location(frame: FrameType, module: str) -> Location:
    code = frame.f_code
    qualname = getattr(code, "co_qualname", code.co_name)  # co_qualname: Python 3.11+
    function = f"{module}.{qualname}" if module else qualname
    return Location(code.co_filename, frame.f_lineno, function)


class _Finding:
    __slots__ = ("description", "location", "system")

    def __init__(
        self, description: QueryDescription, system: str, location: Location | None
    ) -> None:
        self.description = description
        self.system = system
        self.location = location


class RequestScope:
    """Query shapes and sums of one request or task. Only its own thread of execution (and
    the threads it hands work to, such as ``sync_to_async``) touches it."""

    __slots__ = ("found", "insight", "queries", "query_duration_s", "shapes", "span")

    def __init__(self, span: Span | None, insight: Insight | None = None) -> None:
        self.span = span
        self.insight = insight  # reports the N+1 patterns found, when the scope ends
        self.shapes: dict[str, int] = {}
        self.found: dict[str, _Finding] = {}
        self.queries = 0
        self.query_duration_s = 0.0

    def summary(self) -> dict[str, int | float]:
        """The scope's query count and total duration, as span attributes / log fields."""
        return {
            QUERY_COUNT: self.queries,
            QUERY_DURATION_MS: round(self.query_duration_s * 1000.0, 3),
        }


_scope: contextvars.ContextVar[RequestScope | None] = contextvars.ContextVar(
    "otel_django_request_scope", default=None
)


def begin_request(
    span: Span | None, insight: Insight | None = None
) -> contextvars.Token[RequestScope | None]:
    """Opens a scope (an HTTP request, a task); N+1 patterns are counted within it, and
    ``insight`` reports them when it ends."""
    return _scope.set(RequestScope(span, insight))


def end_request(token: contextvars.Token[RequestScope | None]) -> RequestScope | None:
    """Closes the scope and reports its N+1 patterns. Call it before ending the scope's span.

    Returns the scope closed, for its summary; its sums are added to the scope it was opened in.
    """
    scope = _scope.get()
    try:
        _scope.reset(token)
    except (ValueError, RuntimeError):  # a token of another context, or used twice
        logger.debug("query scope closed out of order", exc_info=True)
        return scope
    if scope is not None:
        outer = _scope.get()
        if outer is not None and outer is not scope:
            outer.queries += scope.queries
            outer.query_duration_s += scope.query_duration_s
        if scope.found and scope.insight is not None:
            scope.insight.report_n_plus_one(scope)
    return scope


def current_scope() -> RequestScope | None:
    return _scope.get()


def parameter_attributes(params: Any, redactor: Redactor) -> dict[str, str]:
    """``db.query.parameter.<index or name>`` (opt-in), values as strings; sensitive names
    (``password``...) stay redacted."""
    attributes: dict[str, str] = {}
    if isinstance(params, Mapping):
        items: Any = params.items()
    elif isinstance(params, (list, tuple)):
        items = enumerate(params)
    else:
        return attributes
    for n, (key, value) in enumerate(items):
        if n >= PARAMETERS_MAX:
            break
        name = f"db.query.parameter.{key}"
        if isinstance(key, str) and redactor.is_sensitive(key):
            attributes[name] = REDACTED
        else:
            attributes[name] = str(value)[:PARAMETER_MAX_LENGTH]
    return attributes


def metric_attributes(description: QueryDescription, system: str) -> dict[str, str]:
    """The only attributes otel_django's query counters carry: all from code, none from input."""
    attributes = {"db.system.name": system}
    if description.operation:
        attributes["db.operation.name"] = description.operation
    if description.collection:
        attributes["db.collection.name"] = description.collection
    return attributes


class _ExplainLimiter:
    """At most one EXPLAIN per query shape per interval."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}

    def allow(self, key: str, interval_s: float) -> bool:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < interval_s:
                return False
            if len(self._last) >= EXPLAIN_SHAPES:
                cutoff = now - interval_s
                self._last = {k: t for k, t in self._last.items() if t >= cutoff}
                if len(self._last) >= EXPLAIN_SHAPES:
                    return False
            self._last[key] = now
            return True


class Insight:
    """Thresholds and instruments of query insight; the runtime holds the process's.

    ``meter``: where its counters go (``None``: no metrics); ``locate``: finds the
    application frame that issued a query.
    """

    def __init__(
        self,
        config: DbConfig,
        meter: metrics.Meter | None = None,
        locate: Callable[[], Location | None] = caller_location,
    ) -> None:
        self.slow_s = config.slow_query_ms / 1000.0
        self.n_plus_one_threshold = config.n_plus_one_threshold
        self.explain_enabled = config.explain_enabled
        self.explain_interval_s = config.explain_interval_s
        self.explain_timeout_ms = config.explain_timeout_ms
        self.limiter = _ExplainLimiter()
        self._locate = locate
        self._slow_counter: metrics.Counter | None = None
        self._n_plus_one_counter: metrics.Counter | None = None
        if meter is not None:
            self._slow_counter = meter.create_counter(
                "otel_django.db.slow_queries",
                unit="{query}",
                description="Queries that took at least SLOW_QUERY_MS.",
            )
            self._n_plus_one_counter = meter.create_counter(
                "otel_django.db.n_plus_one",
                unit="{pattern}",
                description="N+1 patterns: one query shape repeated at least "
                "N_PLUS_ONE_THRESHOLD times in one request or task.",
            )

    # -- every query

    def count(
        self,
        description: QueryDescription,
        system: str,
        duration_s: float = 0.0,
        failed: bool = False,
    ) -> None:
        """Adds the query to the current scope's summary and, unless it failed, counts its
        shape; notes an N+1 pattern at the threshold."""
        scope = _scope.get()
        if scope is None:
            return
        scope.queries += 1
        scope.query_duration_s += duration_s
        if failed:
            return
        shapes = scope.shapes
        key = description.text
        count = shapes.get(key, 0) + 1
        if count == 1 and len(shapes) >= SHAPES_PER_SCOPE:
            return
        shapes[key] = count
        if count == self.n_plus_one_threshold:
            self._found_n_plus_one(scope, description, system)

    # -- rare paths

    def _found_n_plus_one(
        self, scope: RequestScope, description: QueryDescription, system: str
    ) -> None:
        if not description.text:
            return
        try:
            location = self._locate()
        except Exception:
            location = None
        scope.found[description.text] = _Finding(description, system, location)

    def report_n_plus_one(self, scope: RequestScope) -> None:
        try:
            span = scope.span
            recording = span is not None and span.is_recording()
            for key, finding in scope.found.items():
                description = finding.description
                count = scope.shapes.get(key, self.n_plus_one_threshold)
                fields: dict[str, Any] = {
                    "db.system.name": finding.system,
                    "db.query.summary": description.summary,
                    "db.query.text": description.text,
                    COUNT: count,
                }
                if finding.location is not None:
                    fields.update(finding.location.attributes())
                if recording:
                    span.add_event(N_PLUS_ONE_EVENT, fields)  # type: ignore[union-attr]
                log.warning(
                    N_PLUS_ONE_EVENT, **_log_fields(fields), threshold=self.n_plus_one_threshold
                )
                if self._n_plus_one_counter is not None:
                    self._n_plus_one_counter.add(1, metric_attributes(description, finding.system))
        except Exception:
            logger.debug("could not report an N+1 pattern", exc_info=True)

    def slow_query(
        self,
        span: Span | None,
        description: QueryDescription,
        system: str,
        duration_s: float,
        explain: Explain | None = None,
    ) -> None:
        """Marks the query's span (before it ends), tells the scope's span, logs and counts."""
        try:
            duration_ms = round(duration_s * 1000.0, 3)
            location = self._locate()
            where = location.attributes() if location is not None else {}
            if span is not None and span.is_recording():
                span.set_attributes({SLOW: True, DURATION_MS: duration_ms, **where})
                if (
                    explain is not None
                    and self.explain_enabled
                    and description.explainable
                    and self.limiter.allow(description.text, self.explain_interval_s)
                ):
                    plan = explain(self.explain_timeout_ms)
                    if plan:
                        span.set_attribute(EXPLAIN, plan)
            fields: dict[str, Any] = {
                "db.system.name": system,
                "db.query.summary": description.summary,
                "db.query.text": description.text,
                DURATION_MS: duration_ms,
                **where,
            }
            scope = _scope.get()
            if scope is not None and scope.span is not None and scope.span.is_recording():
                scope.span.add_event(SLOW_QUERY_EVENT, fields)
            log.warning(
                SLOW_QUERY_EVENT, **_log_fields(fields), threshold_ms=round(self.slow_s * 1000.0, 3)
            )
            if self._slow_counter is not None:
                self._slow_counter.add(1, metric_attributes(description, system))
        except Exception:
            logger.debug("could not report a slow query", exc_info=True)


def _log_fields(fields: dict[str, Any]) -> dict[str, Any]:
    out = dict(fields)
    if DURATION_MS in out:
        out["duration_ms"] = out.pop(DURATION_MS)
    if COUNT in out:
        out["count"] = out.pop(COUNT)
    return out
