"""Exemplars of the in-place histograms: recorded, merged across workers, rendered.

Proves: a measurement recorded with a sampled span's context becomes its bucket's exemplar
(the newest one wins), one with an unsampled, invalid or no span context never does, and
``always_on``/``always_off`` change that as the standard filter says; the series (counts,
sums, buckets) are the same with or without exemplars; OpenMetrics output carries them in a
form prometheus_client's OpenMetrics parser accepts, each inside its bucket, and the 0.0.4
text format never; across workers (snapshots merged, and through their JSON form) each bucket
keeps the newest exemplar any worker had, also when series are folded into overflow; JSON
with bad exemplars is refused, and JSON without them (an older worker's) is read as before;
the SDK's own histogram exemplars are carried the same way; through the real middleware a
sampled request puts its server span's ids on http_server_request_duration_seconds and its
query spans' ids on db_client_operation_duration_seconds, and an unsampled request adds none.
"""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any

import pytest
from django.test import Client
from opentelemetry import trace
from opentelemetry.sdk.metrics import AlwaysOnExemplarFilter, MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import INVALID_SPAN_CONTEXT, SpanContext, TraceFlags
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from otel_django import runtime
from otel_django.metrics.aggregate import Aggregate, HistogramSpec
from otel_django.metrics.exposition import (
    OVERFLOW_LABELS,
    Family,
    Renderer,
    Snapshot,
    Snapshotter,
    from_json,
    merge_into,
    to_json,
)
from otel_django.metrics.reader import ScrapeReader
from tests.support.metrics import scrape

SPEC = HistogramSpec(
    "test.exemplar.duration",
    "s",
    "A test histogram.",
    (0.01, 0.1, 1.0),
    ("http.request.method", "http.route"),
)
GET = ("GET", "a/")
SAMPLED = SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, False, TraceFlags(1))
UNSAMPLED = SpanContext(
    0x5BF92F3577B34DA6A3CE929D0E0E4736, 0x10F067AA0BA902B7, False, TraceFlags(0)
)
OPENMETRICS = "application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5"
EXEMPLAR = re.compile(r' # \{trace_id="([0-9a-f]{32})",span_id="([0-9a-f]{16})"\} (\S+) (\S+)$')


def context(trace_id: int, span_id: int, sampled: bool = True) -> SpanContext:
    return SpanContext(trace_id, span_id, False, TraceFlags(1 if sampled else 0))


GET_LABELS = 'http_request_method="GET",http_route="a/"'


def exemplars_of(aggregate: Aggregate, labels: str = GET_LABELS) -> list[Any] | None:
    point = aggregate.family().points[labels]
    return point[3] if len(point) > 3 else None


def test_a_sampled_measurement_becomes_its_buckets_exemplar_newest_wins() -> None:
    aggregate = Aggregate(SPEC, limit=100)
    aggregate.record(0.05, GET, context(1, 1))
    aggregate.record(0.07, GET, context(2, 2))  # same bucket, newer
    aggregate.record(3.0, GET, context(3, 3))  # the +Inf bucket
    exemplars = exemplars_of(aggregate)
    assert exemplars is not None and len(exemplars) == 4
    assert exemplars[0] is None and exemplars[2] is None
    value, _timestamp, trace_id, span_id = exemplars[1]
    assert (value, trace_id, span_id) == (0.07, f"{2:032x}", f"{2:016x}")
    assert exemplars[3][0] == 3.0 and exemplars[3][2] == f"{3:032x}"


@pytest.mark.parametrize(
    "span_context", [None, UNSAMPLED, INVALID_SPAN_CONTEXT], ids=["none", "unsampled", "invalid"]
)
def test_no_exemplar_without_a_sampled_span(span_context: SpanContext | None) -> None:
    aggregate = Aggregate(SPEC, limit=100)
    aggregate.record(0.05, GET, span_context)
    assert exemplars_of(aggregate) is None


def test_the_filter_decides_as_the_standard_variable_says() -> None:
    always_on = Aggregate(SPEC, limit=100, exemplar_filter="always_on")
    always_on.record(0.05, GET, UNSAMPLED)
    always_on.record(0.5, GET, INVALID_SPAN_CONTEXT)  # no trace to link to: none
    always_on.record(0.5, GET, None)
    on = exemplars_of(always_on)
    assert on is not None and on[1][2] == f"{UNSAMPLED.trace_id:032x}" and on[2] is None

    always_off = Aggregate(SPEC, limit=100, exemplar_filter="always_off")
    always_off.record(0.05, GET, SAMPLED)
    assert exemplars_of(always_off) is None
    with pytest.raises(ValueError, match="exemplar filter"):
        Aggregate(SPEC, limit=100, exemplar_filter="sometimes")


def test_exemplars_never_change_the_series() -> None:
    with_exemplars, without = Aggregate(SPEC, limit=100), Aggregate(SPEC, limit=100)
    for n, value in enumerate([0.001, 0.05, 0.05, 0.2, 4.0, -1.0]):
        with_exemplars.record(value, GET, context(n + 1, n + 1))
        without.record(value, GET)
    a = with_exemplars.family().points
    b = without.family().points
    assert a.keys() == b.keys()
    for labels, point in a.items():
        assert point[:3] == b[labels]


def render(snapshot: Snapshot, openmetrics: bool) -> str:
    return Renderer().render(snapshot, openmetrics).decode()


def test_openmetrics_carries_exemplars_inside_their_buckets_text_format_none() -> None:
    aggregate = Aggregate(SPEC, limit=100)
    for n, value in enumerate([0.005, 0.05, 0.5, 5.0, 0.1, 1.0]):
        aggregate.record(value, GET, context(n + 1, n + 100))
    aggregate.record(0.2, ("POST", "b/"))  # a series without any
    snapshot = Snapshot({aggregate.family_name: aggregate.family()})

    text = render(snapshot, openmetrics=False)
    assert " # {" not in text and "trace_id" not in text

    body = render(snapshot, openmetrics=True)
    lines = [line for line in body.splitlines() if EXEMPLAR.search(line)]
    assert len(lines) == 4  # one per bucket that got a sampled measurement
    families = list(text_string_to_metric_families(body))  # a real OpenMetrics parser
    [family] = [f for f in families if f.name == "test_exemplar_duration_seconds"]
    bounds = [-math.inf, *SPEC.bounds, math.inf]
    seen = 0
    for sample in family.samples:
        if sample.exemplar is None:
            continue
        seen += 1
        assert sample.name.endswith("_bucket")
        upper = float(sample.labels["le"])
        lower = bounds[bounds.index(upper) - 1]
        assert lower < sample.exemplar.value <= upper
        assert set(sample.exemplar.labels) == {"trace_id", "span_id"}
        assert sample.exemplar.timestamp is not None
    assert seen == 4
    # The series are the ones of the text format, value for value.
    samples = [EXEMPLAR.sub("", line) for line in body.splitlines() if not line.startswith("#")]
    assert samples == [line for line in text.splitlines() if not line.startswith("#")]


def test_merge_keeps_the_newest_exemplar_of_each_bucket() -> None:
    old, new = Aggregate(SPEC, limit=100), Aggregate(SPEC, limit=100)
    old.record(0.05, GET, context(1, 1))
    old.record(0.5, GET, context(2, 2))
    time.sleep(0.01)
    new.record(0.06, GET, context(3, 3))  # newer, same bucket as old's first
    new.record(5.0, GET)  # no exemplar for +Inf
    for order in ((new, old), (old, new)):  # the order the workers answer in does not matter
        merged: dict[str, Family] = {}
        for aggregate in order:
            merge_into(merged, {aggregate.family_name: aggregate.family()}, ("all",), 100)
        point = merged[old.family_name].points[GET_LABELS]
        assert point[0] == 4
        assert [e[2][-1] if e else None for e in point[3]] == [None, "3", "2", None]


def test_exemplars_go_with_their_bucket_into_overflow() -> None:
    aggregate = Aggregate(SPEC, limit=100)
    for n in range(5):
        aggregate.record(0.05, ("GET", f"r{n}/"), context(n + 1, n + 1))
    merged: dict[str, Family] = {}
    merge_into(merged, {aggregate.family_name: aggregate.family()}, ("all",), 3)
    overflow = merged[aggregate.family_name].points[OVERFLOW_LABELS]
    assert overflow[0] == 3
    assert overflow[3][1] is not None and overflow[3][1][2] in {f"{n:032x}" for n in (3, 4, 5)}


def test_json_carries_exemplars_and_refuses_bad_ones() -> None:
    aggregate = Aggregate(SPEC, limit=100)
    aggregate.record(0.05, GET, SAMPLED)
    aggregate.record(0.5, ("POST", "b/"))
    snapshot = Snapshot({aggregate.family_name: aggregate.family()})
    raw = to_json(snapshot)
    again = from_json(raw)
    assert (
        again.families[aggregate.family_name].points
        == snapshot.families[aggregate.family_name].points
    )
    # Points keep their old three-element form; a reader that predates exemplars skips them.
    document = json.loads(raw)
    for family in document["families"]:
        assert all(len(point) == 3 for point in family[5].values())
    assert set(document["exemplars"]) == {aggregate.family_name}
    del document["exemplars"]
    older = from_json(json.dumps(document).encode())
    assert all(len(p) == 3 for p in older.families[aggregate.family_name].points.values())

    good = json.loads(raw)
    exemplar = good["exemplars"][aggregate.family_name][GET_LABELS]
    for bad in (
        [None],  # wrong number of buckets
        [None, ["0.05", 1.0, "a" * 32, "b" * 16], None, None],
        [None, [0.05, 1.0, 'x"} 1\nevil', "b" * 16], None, None],  # would inject text
        [None, [0.05, 1.0, "a" * 32, "b" * 15], None, None],
    ):
        document = json.loads(raw)
        document["exemplars"][aggregate.family_name][GET_LABELS] = bad
        with pytest.raises(ValueError):
            from_json(json.dumps(document).encode())
    document = json.loads(raw)
    document["exemplars"] = {"no_such_family": {"": exemplar}}
    with pytest.raises(ValueError):
        from_json(json.dumps(document).encode())


def test_sdk_histogram_exemplars_are_carried_too() -> None:
    reader = ScrapeReader()
    histogram = (
        MeterProvider(metric_readers=[reader], exemplar_filter=AlwaysOnExemplarFilter())
        .get_meter("test")
        .create_histogram("test.sdk.duration", unit="s", explicit_bucket_boundaries_advisory=[1.0])
    )
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("sampled") as span:
        histogram.record(0.5, {"a": "b"})
    histogram.record(3.0, {"a": "b"})  # outside any span: no trace, left out
    snapshot = Snapshotter().take(reader.scrape())
    [point] = snapshot.families["test_sdk_duration_seconds"].points.values()
    assert point[3][0][2] == f"{span.get_span_context().trace_id:032x}"
    assert point[3][0][3] == f"{span.get_span_context().span_id:016x}"
    assert point[3][1] is None


# -- through the real middleware and query observer


def exemplar_lines(body: str, family: str) -> list[tuple[str, str, str]]:
    """(bucket series, trace_id, span_id) of every exemplar of ``family``."""
    found = []
    for line in body.splitlines():
        if line.startswith(family + "_bucket{"):
            match = EXEMPLAR.search(line)
            if match:
                series = line[: line.index("} ") + 1]
                found.append((series, match.group(1), match.group(2)))
    return found


@pytest.mark.django_db
def test_a_sampled_request_links_its_buckets_to_its_spans(spans: InMemorySpanExporter) -> None:
    assert runtime.current().pipeline is not None
    client = Client()
    assert client.get("/products/").status_code == 200
    [server] = [s for s in spans.get_finished_spans() if s.kind.name == "SERVER"]
    queries = [s for s in spans.get_finished_spans() if s.kind.name == "CLIENT"]
    assert server.context.trace_flags.sampled and queries
    trace_id = f"{server.context.trace_id:032x}"

    body = scrape(client, HTTP_ACCEPT=OPENMETRICS)
    http = [
        (series, span_id)
        for series, t, span_id in exemplar_lines(body, "http_server_request_duration_seconds")
        if t == trace_id
    ]
    assert [span_id for _series, span_id in http] == [f"{server.context.span_id:016x}"]
    assert 'http_route="products/"' in http[0][0]
    db = {
        span_id
        for _series, t, span_id in exemplar_lines(body, "db_client_operation_duration_seconds")
        if t == trace_id
    }
    assert db and db <= {f"{s.context.span_id:016x}" for s in queries}
    assert " # {" not in scrape(client)  # the 0.0.4 text format: none


@pytest.mark.django_db
def test_an_unsampled_request_adds_no_exemplar(spans: InMemorySpanExporter) -> None:
    client = Client()
    before = scrape(client, HTTP_ACCEPT=OPENMETRICS)
    unsampled_trace = "6bf92f3577b34da6a3ce929d0e0e4736"
    response = client.get(
        "/products/", HTTP_TRACEPARENT=f"00-{unsampled_trace}-00f067aa0ba902b7-00"
    )
    assert response.status_code == 200
    assert not [s for s in spans.get_finished_spans() if s.context.trace_flags.sampled]
    after = scrape(client, HTTP_ACCEPT=OPENMETRICS)
    assert unsampled_trace not in after
    for family in ("http_server_request_duration_seconds", "db_client_operation_duration_seconds"):
        assert exemplar_lines(after, family) == exemplar_lines(before, family)
    assert trace.get_current_span() is trace.INVALID_SPAN
