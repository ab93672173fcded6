"""Histograms aggregated in place (the request and query paths' instruments).

Proves: the same measurements give the same buckets, counts and sums as the SDK's histogram,
values on a boundary included and negative ones dropped; a histogram never holds more than
its limit of series, the rest counted under ``otel_metric_overflow`` so totals stay exact; and
a handle records into an SDK histogram when otel_django did not build the MeterProvider, then
into the pipeline once one exists, both showing up in one series on ``/metrics``; a process
forked while another thread records does not hang on the copied lock.
"""

from __future__ import annotations

import os
import signal
import time
from types import SimpleNamespace

import pytest
from opentelemetry.sdk.metrics import MeterProvider

from otel_django import runtime
from otel_django.metrics.aggregate import Aggregate, HistogramSpec
from otel_django.metrics.exposition import OVERFLOW_LABELS, Snapshotter
from otel_django.metrics.instruments import Histogram
from otel_django.metrics.reader import ScrapeReader
from tests.support.metrics import scrape, total

pytestmark = pytest.mark.django_db

SPEC = HistogramSpec(
    "test.aggregate.duration",
    "s",
    "A test histogram.",
    (0.0, 0.005, 0.1, 1.0),
    ("http.request.method", "http.response.status_code", "error.type"),
)
VALUES = [0.0, -1.0, 0.005, 0.0050001, 0.1, 0.25, 1.0, 7.0, 0.003, 0.1, 1e-9]


def test_same_buckets_counts_and_sums_as_the_sdk() -> None:
    reader = ScrapeReader()
    sdk_histogram = (
        MeterProvider(metric_readers=[reader])
        .get_meter("test")
        .create_histogram(
            SPEC.name, unit=SPEC.unit, explicit_bucket_boundaries_advisory=list(SPEC.bounds)
        )
    )
    aggregate = Aggregate(SPEC, limit=100)
    for i, value in enumerate(VALUES):
        values = ("GET", 200 if i % 3 else 500, None if i % 3 else "500")
        sdk_histogram.record(value, SPEC.attributes(values))
        aggregate.record(value, values)

    expected = Snapshotter().take(reader.scrape()).families[aggregate.family_name]
    family = aggregate.family()
    assert family.name == "test_aggregate_duration_seconds"
    assert family.bounds == expected.bounds == SPEC.bounds
    assert family.points.keys() == expected.points.keys()
    for labels, (count, total_, buckets) in expected.points.items():
        assert family.points[labels][0] == count
        assert family.points[labels][1] == pytest.approx(total_)
        assert family.points[labels][2] == list(buckets)


def test_series_beyond_the_limit_go_to_overflow() -> None:
    aggregate = Aggregate(SPEC, limit=4)
    for i in range(50):
        aggregate.record(0.01, (f"M{i}", 200, None))
    aggregate.record(0.01, ("M0", 200, None))  # an existing series keeps its own count

    points = aggregate.family().points
    assert len(points) == 4
    counts = {labels: value[0] for labels, value in points.items()}
    assert counts[OVERFLOW_LABELS] == 47
    assert counts['http_request_method="M0",http_response_status_code="200"'] == 2
    assert sum(counts.values()) == 51


def test_records_into_the_sdk_without_a_pipeline_then_into_the_pipeline() -> None:
    pipeline = runtime.current().pipeline
    assert pipeline is not None, "tests run with otel_django's MeterProvider"
    source = SimpleNamespace(pipeline=None)  # as in an application with its own MeterProvider
    histogram = Histogram(SPEC, "tests", source)
    name = "test_aggregate_duration_seconds_count"
    where = {"http_request_method": "POST"}
    before = total(scrape(), name, where)

    histogram.record(0.2, ("POST", 201, None))
    assert pipeline.histogram(SPEC).family().points == {}  # it went to the SDK
    text = scrape()
    assert total(text, name, where) == before + 1

    source.pipeline = pipeline  # otel_django's pipeline now exists (a worker after its fork)
    histogram.record(0.3, ("POST", 201, None))
    text = scrape()
    assert total(text, name, where) == before + 2  # SDK and aggregate: one series
    assert len([line for line in text.splitlines() if line.startswith(name + "{")]) == 1


def test_a_second_definition_of_the_same_name_is_refused() -> None:
    pipeline = runtime.current().pipeline
    assert pipeline is not None
    pipeline.histogram(SPEC)
    with pytest.raises(ValueError, match="defined twice"):
        pipeline.histogram(HistogramSpec(SPEC.name, "s", "other", (1.0,), ("a",)))


def test_a_child_forked_while_the_lock_is_held_can_record() -> None:
    aggregate = Aggregate(SPEC, limit=10)
    with aggregate._lock:  # as if another thread were recording at the fork
        pid = os.fork()
        if pid == 0:
            code = 2
            try:
                aggregate.record(0.5, ("GET", 200, None))
                code = 0 if aggregate.family().points else 1
            finally:
                os._exit(code)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("the forked child hung on the aggregate's lock")
