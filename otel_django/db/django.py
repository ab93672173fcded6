"""ORM query spans for every database alias, through Django's ``execute_wrappers``.

A wrapper is added to each connection when it is created (``connection_created``), so every
query any code runs through the ORM or ``connection.cursor()`` passes through it. DB-API
instrumentations (opentelemetry-instrumentation-sqlite3, -psycopg ...) are suppressed inside
it, the standard way (``suppress_instrumentation``): one span per query, never two. Per query it
costs a cached description of the SQL (``db/sql.py``), one span, one histogram point (with the
span as its bucket's exemplar when sampled) and one dict increment for N+1 counting, plus the
scope's query count and duration; slow queries get more (``db/insight.py``).

:func:`instrument_django_db` builds the observer from what startup hands it (configuration,
insight, redactor, tracer provider, pipeline source); the runtime keeps it.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, suppress_instrumentation
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from .. import __version__, _compat
from ..config import Config
from ..metrics.aggregate import AttributeValues
from ..metrics.instruments import Histogram, PipelineSource
from ..redaction import Redactor
from ..semconv import db_system
from ..semconv import error_type as error_type_of
from ..traces import spans
from .duration import DURATION, duration_values
from .errors import sqlstate
from .explain import explain_for
from .insight import Insight, parameter_attributes
from .sql import QueryDescription, describe

logger = logging.getLogger("otel_django.db")

_CACHE_MAX = 4096
_DBAPI_MODULE = "opentelemetry.instrumentation.dbapi"

Attributes = dict[str, AttributeValue]


class QueryObserver:
    """The execute wrapper: one CLIENT span and one duration measurement per query.

    As upstream's instrumentors, it takes its providers: ``tracer_provider`` (default: the
    API's) and ``pipeline_source``, where its histogram finds the metrics pipeline (``None``:
    no query metrics). ``describe`` turns SQL into its safe description.
    """

    def __init__(
        self,
        config: Config,
        insight: Insight | None = None,
        redactor: Redactor | None = None,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        pipeline_source: PipelineSource | None = None,
        describe: Callable[[str, int, str], QueryDescription] = describe,
    ) -> None:
        self._tracer = trace.get_tracer("otel_django.db", __version__, tracer_provider)
        self._tracer_provider = tracer_provider
        self._skip_unsampled: bool | None = None
        self._duration = (
            Histogram(DURATION, "otel_django.db", pipeline_source)
            if config.metrics_on and pipeline_source is not None
            else None
        )
        self._max_length = config.db.query_text_max_length
        self._record_parameters = config.db.record_query_parameters
        self._redactor = redactor or Redactor(config.logging.redact_keys)
        self._describe = describe
        self.insight = insight
        self._connection_attributes: dict[str, Attributes] = {}
        # (alias, description) -> (span attributes, metric attribute values), once per shape.
        self._attributes: dict[
            tuple[str, QueryDescription], tuple[Attributes, AttributeValues]
        ] = {}

    @property
    def duration_histogram(self) -> Histogram | None:
        """``db.client.operation.duration``, shared with the SQLAlchemy hooks."""
        return self._duration

    def connection_attributes(self, connection: BaseDatabaseWrapper) -> Attributes:
        cached = self._connection_attributes.get(connection.alias)
        if cached is None:
            settings = connection.settings_dict
            cached = {"db.system.name": db_system(connection.vendor)}
            if settings.get("NAME"):
                cached["db.namespace"] = str(settings["NAME"])
            if settings.get("HOST"):
                cached["server.address"] = str(settings["HOST"])
                if settings.get("PORT"):
                    with contextlib.suppress(ValueError):
                        cached["server.port"] = int(settings["PORT"])
            self._connection_attributes[connection.alias] = cached
        return cached

    def _attributes_for(
        self, connection: BaseDatabaseWrapper, description: QueryDescription
    ) -> tuple[Attributes, AttributeValues]:
        key = (connection.alias, description)
        cached = self._attributes.get(key)
        if cached is None:
            base = self.connection_attributes(connection)
            span_attributes: Attributes = {**base, "db.query.summary": description.summary}
            if description.text:
                span_attributes["db.query.text"] = description.text
            if description.operation:
                span_attributes["db.operation.name"] = description.operation
            if description.collection:
                span_attributes["db.collection.name"] = description.collection
            metric_values = duration_values(str(base["db.system.name"]), description, None)
            if len(self._attributes) >= _CACHE_MAX:
                self._attributes.clear()
            cached = self._attributes[key] = (span_attributes, metric_values)
        return cached

    def __call__(
        self,
        execute: Callable[..., Any],
        sql: str,
        params: Any,
        many: bool,
        context: dict[str, Any],
    ) -> Any:
        if not is_instrumentation_enabled():
            return execute(sql, params, many, context)
        current = otel_context.get_current()
        try:
            connection: BaseDatabaseWrapper = context["connection"]
            description = self._describe(sql, self._max_length, connection.vendor)
            span_attributes, metric_values = self._attributes_for(connection, description)
            if self._record_parameters and not many and params:
                parameters = parameter_attributes(params, self._redactor)
                span_attributes = {**span_attributes, **parameters}
            parent = trace.get_current_span(current).get_span_context()
            if parent.is_valid and (
                parent.trace_flags.sampled or not self._unsampled_children_dropped()
            ):
                span = spans.start_span(
                    self._tracer, description.summary, current, SpanKind.CLIENT, span_attributes
                )
            else:  # outside any request or task, or in an unsampled one: measured, not traced
                span = trace.INVALID_SPAN
        except Exception:  # telemetry never stands between the application and its query
            logger.debug("query not observed", exc_info=True)
            return _execute_alone(execute, sql, params, many, context)
        error: BaseException | None = None
        start = time.perf_counter()
        try:
            return _execute_alone(execute, sql, params, many, context)
        except BaseException as exc:
            error = exc
            raise
        finally:
            duration = time.perf_counter() - start
            try:
                self._finish(
                    span,
                    connection,
                    description,
                    metric_values,
                    sql,
                    params,
                    many,
                    duration,
                    error,
                )
            except Exception:
                logger.debug("query observation failed", exc_info=True)

    def _unsampled_children_dropped(self) -> bool:
        """Whether the sampler drops every child of an unsampled parent (``ParentBased`` with
        its defaults, as otel_django sets it up, or ``always_off``). Then a query in an
        unsampled request gets no span at all: the SDK would build one only to drop it."""
        known = self._skip_unsampled
        if known is None:
            provider = self._tracer_provider or trace.get_tracer_provider()
            sampler = getattr(provider, "sampler", None)
            if sampler is None:
                return False  # no SDK provider yet (a pre-fork master): decide later
            known = self._skip_unsampled = sampler is ALWAYS_OFF or (
                isinstance(sampler, ParentBased)
                and _compat.parent_based_unsampled_delegates(sampler) == (ALWAYS_OFF, ALWAYS_OFF)
            )
        return known

    def _finish(
        self,
        span: trace.Span,
        connection: BaseDatabaseWrapper,
        description: QueryDescription,
        metric_values: AttributeValues,
        sql: str,
        params: Any,
        many: bool,
        duration: float,
        error: BaseException | None,
    ) -> None:
        end_time: int | None = None
        system: str = metric_values[0]
        insight = self.insight
        if error is not None:
            metric_values = self._record_error(span, error, metric_values)
        if insight is not None:
            insight.count(description, system, duration, failed=error is not None)
            if error is None and duration >= insight.slow_s:
                end_time = time.time_ns()  # the span ends with the query, not after this work
                explain = _explainer(connection, sql, params) if not many else None
                insight.slow_query(span, description, system, duration, explain)
        span.end(end_time)
        if self._duration is not None:
            self._duration.record(duration, metric_values, span.get_span_context())

    @staticmethod
    def _record_error(
        span: trace.Span, error: BaseException, metric_values: AttributeValues
    ) -> AttributeValues:
        # The exception's message is left out on purpose: database errors quote values
        # ("Key (email)=(...) already exists"); see errors.py.
        error_type = error_type_of(error)
        if span.is_recording():
            span.set_status(Status(StatusCode.ERROR))
            span.set_attribute("error.type", error_type)
            code = sqlstate(error)
            if code is not None:
                span.set_attribute("db.response.status_code", code)
        return (*metric_values[:3], error_type)


def _execute_alone(
    execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    """A DB-API instrumentation would make a second span for the same query (a root span
    outside requests): the ORM's span is the one, so instrumentation is suppressed inside."""
    if _DBAPI_MODULE not in sys.modules:
        return execute(sql, params, many, context)
    with suppress_instrumentation():
        return execute(sql, params, many, context)


def _explainer(
    connection: BaseDatabaseWrapper, sql: str, params: Any
) -> Callable[[float], str | None] | None:
    explain = explain_for(connection.vendor)
    if explain is None:
        return None

    def run(timeout_ms: float) -> str | None:
        # A transaction Django already knows to be broken is left alone.
        if connection.needs_rollback or connection.connection is None:
            return None
        with suppress_instrumentation():  # the EXPLAIN is part of the query's span
            return explain(connection.connection, connection.create_cursor, sql, params, timeout_ms)

    return run


def instrument_django_db(
    config: Config,
    insight: Insight | None = None,
    redactor: Redactor | None = None,
    *,
    tracer_provider: trace.TracerProvider | None = None,
    pipeline_source: PipelineSource | None = None,
) -> QueryObserver:
    """Adds a query observer to every connection, open now or opened later; returns it."""
    observer = QueryObserver(
        config,
        insight,
        redactor,
        tracer_provider=tracer_provider,
        pipeline_source=pipeline_source,
    )

    def add_wrapper(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
        if observer not in connection.execute_wrappers:
            connection.execute_wrappers.insert(0, observer)

    connection_created.connect(add_wrapper, weak=False, dispatch_uid="otel_django.db")
    _suppress_dbapi_spans_on_connect()
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        add_wrapper(None, connection)
    return observer


def _dbapi_instrumented() -> bool:
    """Whether a DB-API instrumentation (sqlite3, psycopg, psycopg2, mysqlclient, pymysql ...)
    may be active: they all build on ``opentelemetry.instrumentation.dbapi``."""
    return _DBAPI_MODULE in sys.modules


def _suppress_dbapi_spans_on_connect() -> None:
    """Queries Django runs while it opens a connection (time zone, role) do not go through
    ``execute_wrappers``: run the connect with instrumentation suppressed, so a DB-API
    instrumentation makes no root span for them."""
    original = BaseDatabaseWrapper.connect
    if getattr(original, "_otel_django", False):
        return

    def connect(self: BaseDatabaseWrapper) -> None:
        if not _dbapi_instrumented():
            return original(self)
        with suppress_instrumentation():
            return original(self)

    connect._otel_django = True  # type: ignore[attr-defined]
    BaseDatabaseWrapper.connect = connect  # type: ignore[method-assign]
