"""Fixtures of the database-insight tests: live thresholds, seeded shop data, captured logs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from django.db import connections
from shop.models import Category, Product

from otel_django import runtime
from otel_django.db.insight import Insight

ALIAS = "postgres"


THRESHOLDS = (
    "slow_s",
    "n_plus_one_threshold",
    "explain_enabled",
    "explain_interval_s",
    "explain_timeout_ms",
)


@pytest.fixture
def tune(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """``tune(slow_query_ms=0, explain_enabled=True ...)`` gives the live query insight (the
    one the observers report to) the thresholds of a configuration with these settings, and a
    fresh EXPLAIN limiter; monkeypatch puts everything back."""
    current = runtime.current()
    live = current.insight
    monkeypatch.setattr(live, "limiter", Insight(current.config.db).limiter)

    def apply(**overrides: Any) -> None:
        tuned = Insight(current.config.replace(**overrides).db)
        for name in THRESHOLDS:
            monkeypatch.setattr(live, name, getattr(tuned, name))

    return apply


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
        wrapper = runtime.current().observer
        assert wrapper is not None, "otel_django did not instrument the ORM"
        connection.execute_wrappers.remove(wrapper)
        try:
            with suppress_instrumentation():
                yield
        finally:
            connection.execute_wrappers.insert(0, wrapper)

    return remove
