"""Celery tasks are N+1 scopes of their own (a real task, run eagerly)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from shop.models import Product

from otel_django.config import Config
from otel_django.db import insight
from tests.support.shop import seed
from tests.support.spans import events

celery = pytest.importorskip("celery")
pytestmark = pytest.mark.django_db

app = celery.Celery("otel-django-tests", set_as_current=False)
app.conf.task_always_eager = True


@app.task
def list_products() -> int:
    return len([(p.name, p.category.name) for p in Product.objects.order_by("id")])


def test_n_plus_one_in_a_task_is_reported_once_with_the_task_span(
    spans: InMemorySpanExporter, override_config: Callable[..., Config], logs: list[dict[str, Any]]
) -> None:
    seed("default", products=6)
    override_config(n_plus_one_threshold=5)
    outer = insight.begin_request(None)  # a task run from a request has its own scope
    try:
        with trace.get_tracer("test").start_as_current_span("run task") as span:
            assert list_products.delay().get() == 6
            assert list_products.delay().get() == 6
    finally:
        insight.end_request(outer)

    [task_span] = [s for s in spans.get_finished_spans() if s.name == "run task"]
    found = events(task_span, "n_plus_one")
    assert [e["otel_django.db.count"] for e in found] == [6, 6]  # once per task run
    assert all(
        e["code.function.name"].startswith("tests.celery.test_insight.list_products") for e in found
    )
    assert [e["event"] for e in logs if e["event"] == "n_plus_one"] == ["n_plus_one"] * 2
    assert span is not None


def test_task_without_a_span_still_logs_its_n_plus_one(
    override_config: Callable[..., Config], logs: list[dict[str, Any]]
) -> None:
    seed("default", products=5)
    override_config(n_plus_one_threshold=5)

    list_products.delay().get()

    [line] = [e for e in logs if e["event"] == "n_plus_one"]
    assert line["event"] == "n_plus_one" and line["count"] == 5
