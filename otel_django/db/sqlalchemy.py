"""SQLAlchemy engines: safe query text, summaries and query insight on upstream's spans.

The upstream ``SQLAlchemyInstrumentor`` listens on each engine it creates and makes one CLIENT
span per cursor execution, with the raw statement as ``db.query.text`` (or ``db.statement``)
and ``"SELECT dbname"`` as name. otel_django listens on the ``Engine`` class: class-level
listeners run before the engine's own, so in ``after_cursor_execute`` and ``handle_error`` the
upstream span is still open. There the raw text is replaced by the sanitized one, the span is
renamed to ``db.query.summary``, the summary, operation and collection are set, and the query
is counted for N+1 and checked for slowness like a Django one, and its duration is recorded in
``db.client.operation.duration`` with the ORM's attributes. This works for engines created
before or after instrumentation, and without the upstream instrumentor (then no spans).

When it has more work to do than setting attributes (a slow query, a failed one), the hook ends
the span itself at the right time and takes it from the execution context, so upstream's
listener, which would end it again or record the exception's message (which quotes parameters
in SQLAlchemy), leaves it alone.
"""

from __future__ import annotations

import importlib.util
import sys
import time
import weakref
from typing import Any

from opentelemetry.trace import Span, Status, StatusCode

from ..config import Config
from ..metrics.instruments import Histogram
from ..redaction import Redactor
from ..semconv import db_system
from ..semconv import error_type as error_type_of
from . import insight as insight_module
from .duration import duration_values
from .explain import explain_for
from .insight import Insight, parameter_attributes
from .sql import QueryDescription, describe

# Attributes upstream may have filled with the raw statement, depending on
# OTEL_SEMCONV_STABILITY_OPT_IN.
_RAW_TEXT_ATTRIBUTES = ("db.statement", "db.query.text")
_START = "_otel_django_start"
_SPAN = "_otel_span"  # where upstream keeps its span on the execution context
_CACHE_MAX = 4096
_DBAPI_MODULE = "opentelemetry.instrumentation.dbapi"


class _Hooks:
    def __init__(
        self,
        config: Config,
        insight: Insight,
        duration: Histogram | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.duration = duration
        self.max_length = config.db.query_text_max_length
        self.record_parameters = config.db.record_query_parameters
        self.redactor = redactor or Redactor(config.logging.redact_keys)
        self.insight = insight
        # Which attributes upstream sets depends on OTEL_SEMCONV_STABILITY_OPT_IN, fixed for the
        # process: learnt from the first span, then the attributes are built once per shape.
        self._upstream_keys: frozenset[str] | None = None
        self._attributes: dict[tuple[QueryDescription, str], dict[str, str]] = {}

    def set_attributes(
        self, span: Span, description: QueryDescription, system: str, statement: Any
    ) -> None:
        key = (description, system)
        attributes = self._attributes.get(key)
        if attributes is None:
            attributes = self._build_attributes(span, description, system, statement)
            if len(self._attributes) >= _CACHE_MAX:
                self._attributes.clear()
            self._attributes[key] = attributes
        span.update_name(description.summary)
        span.set_attributes(attributes)

    def _build_attributes(
        self, span: Span, description: QueryDescription, system: str, statement: Any
    ) -> dict[str, str]:
        # Every attribute set costs a validation in the SDK: set only what upstream got wrong
        # or left out.
        if self._upstream_keys is None:
            self._upstream_keys = frozenset(getattr(span, "attributes", None) or ())
        upstream = self._upstream_keys
        attributes = {"db.query.summary": description.summary}
        if description.text != statement:  # else upstream's raw text is already the safe one
            for key in _RAW_TEXT_ATTRIBUTES:
                if key in upstream:
                    attributes[key] = description.text
        if "db.query.text" not in upstream or description.text != statement:
            attributes["db.query.text"] = description.text
        if description.operation:
            attributes["db.operation.name"] = description.operation
        elif "db.operation.name" in upstream:
            # Upstream's value is "<first word> <database>"; an attribute cannot be removed.
            attributes["db.operation.name"] = description.summary.partition(" ")[0]
        if description.collection:
            attributes["db.collection.name"] = description.collection
        if "db.system.name" not in upstream or system not in ("postgresql", "sqlite", "mysql"):
            attributes["db.system.name"] = system  # upstream says "mssql", "oracle" ...
        return attributes

    def before_cursor_execute(
        self,
        conn: Any,
        cursor: Any,
        statement: Any,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        if context is not None:
            setattr(context, _START, time.perf_counter())

    def after_cursor_execute(
        self,
        conn: Any,
        cursor: Any,
        statement: Any,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        try:
            duration = _elapsed(context)
            dialect = conn.dialect.name
            system = db_system(dialect)
            description = describe(statement, self.max_length, dialect)
            span: Span | None = getattr(context, _SPAN, None)
            self.record_duration(duration, description, system, None, span)
            if span is not None and span.is_recording():
                self.set_attributes(span, description, system, statement)
                if self.record_parameters and not executemany and parameters:
                    span.set_attributes(parameter_attributes(parameters, self.redactor))
            insight = self.insight
            insight.count(description, system, duration or 0.0)
            if duration is not None and duration >= insight.slow_s:
                end_time = time.time_ns()
                explain = None
                if not executemany:
                    explain = _explainer(dialect, cursor, statement, parameters)
                insight.slow_query(span, description, system, duration, explain)
                if span is not None:
                    span.end(end_time)
                    setattr(context, _SPAN, None)
        except Exception:
            insight_module.logger.debug("SQLAlchemy query insight failed", exc_info=True)

    def handle_error(self, exception_context: Any) -> None:
        try:
            context = exception_context.execution_context
            span: Span | None = getattr(context, _SPAN, None)
            if span is None:
                return
            statement = exception_context.statement
            dialect = exception_context.engine.dialect.name if exception_context.engine else ""
            error_type = error_type_of(exception_context.original_exception)
            description = describe(statement, self.max_length, dialect) if statement else None
            duration = _elapsed(context)
            system = db_system(dialect)
            self.record_duration(duration, description, system, error_type, span)
            if description is not None:
                self.insight.count(description, system, duration or 0.0, failed=True)
            if span.is_recording():
                if description is not None:
                    self.set_attributes(span, description, db_system(dialect), statement)
                span.set_attribute("error.type", error_type)
                span.set_status(Status(StatusCode.ERROR))
            span.end()
            setattr(context, _SPAN, None)
        except Exception:
            insight_module.logger.debug("SQLAlchemy error hook failed", exc_info=True)

    def record_duration(
        self,
        duration: float | None,
        description: QueryDescription | None,
        system: str,
        error_type: str | None,
        span: Span | None = None,
    ) -> None:
        if self.duration is None or duration is None:
            return
        span_context = span.get_span_context() if span is not None else None
        self.duration.record(
            duration, duration_values(system, description, error_type), span_context
        )


def _elapsed(context: Any) -> float | None:
    start = getattr(context, _START, None) if context is not None else None
    return None if start is None else time.perf_counter() - start


def _explainer(dialect: str, cursor: Any, statement: str, parameters: Any) -> Any:
    raw_connection = getattr(cursor, "connection", None)
    if raw_connection is None:
        return None
    explain = explain_for(dialect)
    if explain is None:
        return None

    def run(timeout_ms: float) -> str | None:
        return explain(raw_connection, raw_connection.cursor, statement, parameters, timeout_ms)

    return run


def instrument(
    config: Config,
    insight: Insight,
    redactor: Redactor | None = None,
    duration: Histogram | None = None,
) -> _Hooks | None:
    """Listens on every SQLAlchemy engine, if SQLAlchemy is installed (``None`` if not);
    call it once. Returns the listeners' object."""
    if importlib.util.find_spec("sqlalchemy") is None:
        return None
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    hooks = _Hooks(config, insight, duration, redactor)
    event.listen(Engine, "before_cursor_execute", hooks.before_cursor_execute)
    event.listen(Engine, "after_cursor_execute", hooks.after_cursor_execute)
    event.listen(Engine, "handle_error", hooks.handle_error)
    event.listen(Engine, "engine_connect", _suppress_dbapi_spans)
    return hooks


# -- one span per statement: upstream's, not also a DB-API instrumentation's

_SUPPRESSION = "_otel_django_suppression"
_engines_seen: weakref.WeakSet[Any] = weakref.WeakSet()


def _suppress_dbapi_spans(connection: Any, *args: Any) -> None:
    """On an engine's first connection, listeners on the engine itself: they run after
    upstream's (which is registered when the engine is created), so that a DB-API
    instrumentation of the driver (sqlite3, psycopg ...) adds no second span, with the raw
    statement text, to a statement upstream's span already covers."""
    from sqlalchemy import event

    engine = connection.engine
    if engine in _engines_seen:
        return
    _engines_seen.add(engine)
    event.listen(engine, "before_cursor_execute", _suppress)
    event.listen(engine, "after_cursor_execute", _unsuppress)
    event.listen(engine, "handle_error", _unsuppress_on_error)


def _suppress(
    conn: Any, cursor: Any, statement: Any, parameters: Any, context: Any, executemany: bool
) -> None:
    if context is None or getattr(context, _SPAN, None) is None:
        return  # no upstream span: the DB-API instrumentation's is the only one
    if _DBAPI_MODULE not in sys.modules:
        return
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    suppression = suppress_instrumentation()
    suppression.__enter__()  # left in _unsuppress, after upstream's span has the statement
    setattr(context, _SUPPRESSION, suppression)


def _unsuppress(
    conn: Any, cursor: Any, statement: Any, parameters: Any, context: Any, executemany: bool
) -> None:
    suppression = getattr(context, _SUPPRESSION, None) if context is not None else None
    if suppression is not None:
        setattr(context, _SUPPRESSION, None)
        suppression.__exit__(None, None, None)


def _unsuppress_on_error(exception_context: Any) -> None:
    context = exception_context.execution_context
    _unsuppress(None, None, None, None, context, False)
