"""Cardinality protection.

Proves: with a limit of N, a metric fed unbounded attribute sets keeps at most N series, the
extra ones counted under ``otel.metric.overflow=true`` so that the total stays exact, while
series that already exist keep counting on their own; the merge of workers' snapshots obeys
the same limit; and 20,000 requests to random unmatched paths with random (often invalid)
methods add at most one series per known method and status, no path reaching a label.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable

import pytest
from django.http import HttpRequest, HttpResponseNotFound
from django.test import Client, RequestFactory
from opentelemetry.sdk.metrics import MeterProvider

from otel_django.config import Config
from otel_django.metrics import cardinality
from otel_django.metrics.exposition import COUNTER, OVERFLOW_LABELS, Family, merge_into
from otel_django.metrics.reader import ScrapeReader
from otel_django.middleware import KNOWN_METHODS, OtelDjangoMiddleware
from tests.support.metrics import scrape, series, total

pytestmark = pytest.mark.django_db


def test_limit_folds_new_attribute_sets_into_overflow() -> None:
    from otel_django import runtime

    reader = ScrapeReader(cardinality_limit=10)
    provider = MeterProvider(metric_readers=[reader])
    counter = provider.get_meter("test").create_counter("test.requests")
    histogram = provider.get_meter("test").create_histogram("test.duration")
    gauge = provider.get_meter("test").create_gauge("test.level")
    try:
        for i in range(100):
            counter.add(1, {"user": f"u{i}"})
            histogram.record(0.5, {"user": f"u{i}"})
            gauge.set(i, {"user": f"u{i}"})
        counter.add(5, {"user": "u0"})  # an existing series keeps its own count
        data = reader.scrape()
    finally:
        # Before opentelemetry-sdk 1.45.2 the limit is the process's (otel_django._compat).
        cardinality.reader_options(runtime.current().config.metrics.cardinality_limit)
    assert data is not None
    metrics = {
        m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    }
    points = list(metrics["test.requests"].data.data_points)
    assert len(points) == 10
    by_attrs = {tuple(sorted(p.attributes.items())): p.value for p in points}  # type: ignore[union-attr]
    assert by_attrs[(("otel.metric.overflow", True),)] == 91
    assert by_attrs[(("user", "u0"),)] == 6
    assert sum(by_attrs.values()) == 105
    hist_points = list(metrics["test.duration"].data.data_points)
    assert len(hist_points) == 10
    assert sum(p.count for p in hist_points) == 100  # type: ignore[union-attr]
    assert len(list(metrics["test.level"].data.data_points)) == 10


def test_merge_obeys_the_limit() -> None:
    target: dict[str, Family] = {}
    for worker in range(5):
        source = {
            "x_total": Family(
                "x_total",
                COUNTER,
                "",
                "all",
                points={f'w="{worker}",i="{i}"': 1 for i in range(10)},
            )
        }
        merge_into(target, source, ("all",), limit=20)
    points = target["x_total"].points
    assert len(points) == 20
    assert sum(points.values()) == 50
    assert points[OVERFLOW_LABELS] == 31


def _random_method(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return rng.choice(sorted(KNOWN_METHODS))
    return "".join(rng.choice(string.ascii_letters + "-_!") for _ in range(rng.randint(1, 12)))


def _random_path(rng: random.Random) -> str:
    return "/" + "/".join(
        "".join(
            rng.choice(string.ascii_lowercase + string.digits) for _ in range(rng.randint(1, 10))
        )
        for _ in range(rng.randint(1, 4))
    )


@pytest.mark.slow
def test_random_unmatched_requests_leave_series_bounded(
    override_config: Callable[..., Config],
) -> None:
    override_config(access_log=False)  # 20,000 log lines would only slow the test down
    rng = random.Random(20_000)
    name = "http_server_request_duration_seconds_count"
    before = scrape()
    before_series = len(series(before, name))
    before_total = total(before, name)

    # The middleware as Django runs it, in front of a view that matches no route (Django's
    # own resolver would 404 the same way); driving it directly keeps 20,000 requests quick.
    def not_found(request: HttpRequest) -> HttpResponseNotFound:
        return HttpResponseNotFound()

    middleware = OtelDjangoMiddleware(not_found)
    factory = RequestFactory()
    paths = []
    for _ in range(20_000):
        path = _random_path(rng)
        paths.append(path)
        middleware(factory.generic(_random_method(rng), path))
    # Some through the whole stack too (URL resolver, 404 handler).
    client = Client()
    for _ in range(200):
        client.generic(_random_method(rng), _random_path(rng))

    after = scrape()
    assert total(after, name) == before_total + 20_200
    added = len(series(after, name)) - before_series
    # One series per (method or _OTHER) for the 404s, nothing per path.
    assert added <= len(KNOWN_METHODS) + 1
    for labels in series(after, name):
        assert "http_route" not in labels or not labels["http_route"].startswith("/")
        assert labels["http_request_method"] in KNOWN_METHODS | {"_OTHER"}
    assert sum(len(series(after, n)) for n in {s for s in _names(after)}) < 5_000
    sample = set(rng.sample(paths, 200))
    assert not any(p in after for p in sample if len(p) > 6)


def _names(text: str) -> set[str]:
    return {
        line.split("{")[0].split(" ")[0]
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
