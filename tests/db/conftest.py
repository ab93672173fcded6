"""Fixtures of the database-insight tests: seeded shop data on PostgreSQL, a current span, a
connection without otel_django's wrapper."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connections

from otel_django import runtime
from tests.support.shop import seed

ALIAS = "postgres"


@pytest.fixture
def pg_shop(db: None) -> str:
    seed(ALIAS)
    return ALIAS


@pytest.fixture
def within_a_span() -> Iterator[None]:
    """A current span, as in a request or task: queries outside any are not traced."""
    from opentelemetry import trace

    with trace.get_tracer("tests").start_as_current_span("test"):
        yield


@pytest.fixture
def without_observer() -> Callable[[str], Any]:
    """A context manager removing otel_django's wrapper from one alias's connection (and,
    as without otel_django, tracing nothing: the DB-API instrumentations installed for the
    tests are suppressed)."""
    import contextlib

    from opentelemetry.instrumentation.utils import suppress_instrumentation

    @contextlib.contextmanager
    def remove(alias: str) -> Iterator[None]:
        connection = connections[alias]
        connection.ensure_connection()
        wrapper = runtime.current().observer
        assert wrapper is not None, "otel_django did not instrument the ORM"
        connection.execute_wrappers.remove(wrapper)
        try:
            with suppress_instrumentation():
                yield
        finally:
            connection.execute_wrappers.insert(0, wrapper)

    return remove
