"""ORM query spans for every database alias, through Django's ``execute_wrappers``.

A wrapper is added to each connection when it is created (``connection_created``), so every
query any code runs through the ORM or ``connection.cursor()`` passes through it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from .. import __version__
from ..config import Config
from .sql import describe

DB_SYSTEMS = {
    "postgresql": "postgresql",
    "sqlite": "sqlite",
    "mysql": "mysql",
    "oracle": "oracle.db",
    "microsoft": "microsoft.sql_server",
}
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)


class QueryObserver:
    """The execute wrapper: one CLIENT span and one duration measurement per query."""

    def __init__(self, config: Config) -> None:
        self._tracer = trace.get_tracer("otel_django.db", __version__)
        self._duration = (
            metrics.get_meter("otel_django.db", __version__).create_histogram(
                "db.client.operation.duration", unit="s",
                description="Duration of database client operations.",
                explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
            )
            if config.metrics_enabled else None
        )
        self._max_length = config.query_text_max_length
        self._connection_attributes: dict[str, dict[str, str | int]] = {}

    def connection_attributes(self, connection: BaseDatabaseWrapper) -> dict[str, str | int]:
        cached = self._connection_attributes.get(connection.alias)
        if cached is None:
            settings = connection.settings_dict
            cached = {"db.system.name": DB_SYSTEMS.get(connection.vendor, connection.vendor)}
            if settings.get("NAME"):
                cached["db.namespace"] = str(settings["NAME"])
            if settings.get("HOST"):
                cached["server.address"] = str(settings["HOST"])
                if settings.get("PORT"):
                    try:
                        cached["server.port"] = int(settings["PORT"])
                    except ValueError:
                        pass
            self._connection_attributes[connection.alias] = cached
        return cached

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool,
                 context: dict[str, Any]) -> Any:
        connection: BaseDatabaseWrapper = context["connection"]
        description = describe(sql, self._max_length)
        base = self.connection_attributes(connection)
        span = self._tracer.start_span(description.summary, kind=SpanKind.CLIENT, attributes=base)
        recording = span.is_recording()
        if recording:
            span.set_attribute("db.query.text", description.text)
            span.set_attribute("db.query.summary", description.summary)
            if description.operation:
                span.set_attribute("db.operation.name", description.operation)
            if description.collection:
                span.set_attribute("db.collection.name", description.collection)
        error_type: str | None = None
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        except Exception as exc:
            error_type = type(exc).__qualname__
            if recording:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR))
                span.set_attribute("error.type", error_type)
            raise
        finally:
            duration = time.perf_counter() - start
            span.end()
            if self._duration is not None:
                attributes: dict[str, str | int] = {"db.system.name": base["db.system.name"]}
                if description.operation:
                    attributes["db.operation.name"] = description.operation
                if description.collection:
                    attributes["db.collection.name"] = description.collection
                if error_type is not None:
                    attributes["error.type"] = error_type
                self._duration.record(duration, attributes)


_observer: QueryObserver | None = None


def _add_wrapper(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    if _observer is not None and _observer not in connection.execute_wrappers:
        connection.execute_wrappers.insert(0, _observer)


def instrument_django_db(config: Config) -> None:
    """Adds the query observer to every connection, open now or opened later. Idempotent."""
    global _observer
    if _observer is not None:
        return
    _observer = QueryObserver(config)
    connection_created.connect(_add_wrapper, dispatch_uid="otel_django.db")
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        _add_wrapper(None, connection)
