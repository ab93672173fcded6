"""Fixtures of the database-insight tests: live thresholds, seeded shop data, captured logs."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from django.db import connections
from shop.models import Category, Product

from otel_django import runtime
from otel_django.db import insight
from otel_django.db.django import observer

ALIAS = "postgres"


@pytest.fixture
def tune() -> Iterator[Callable[..., None]]:
    """``tune(slow_query_ms=0, explain_enabled=True ...)`` changes the live query insight."""
    live = insight.get_insight()
    assert live is not None, "otel_django did not set up query insight"
    base = runtime.get_config()
    live.limiter.clear()

    def apply(**overrides: Any) -> None:
        live.apply(dataclasses.replace(base, **overrides))

    yield apply
    live.apply(base)
    live.limiter.clear()


def seed(alias: str, products: int = 8) -> None:
    categories = [Category.objects.using(alias).create(name=f"cat-{n}") for n in range(3)]
    for n in range(products):
        Product.objects.using(alias).create(
            name=f"product-{n}", price_cents=100 + n, category=categories[n % 3]
        )


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
def logs() -> Iterator[list[dict[str, Any]]]:
    """Event dicts logged through structlog during the test (before rendering)."""
    with structlog.testing.capture_logs() as captured:
        yield captured


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
        wrapper = observer()
        connection.execute_wrappers.remove(wrapper)
        try:
            with suppress_instrumentation():
                yield
        finally:
            connection.execute_wrappers.insert(0, wrapper)

    return remove
