"""The cost of one /metrics scrape: 4,500 histogram series, against prometheus_client.

500 routes x 3 methods x 3 status codes of ``http.server.request.duration`` (14 buckets), the
same observations recorded in an OTel MeterProvider read by otel_django and in a
prometheus_client registry (``_created`` series off, so it renders the same samples).
Candidates: prometheus_client's ``generate_latest`` (the baseline); otel_django's renderer on
a snapshot; a whole otel_django scrape (SDK collect + snapshot + render); the same scrape when
the series come from otel_django's in-place histograms (``metrics/aggregate.py``, how the
HTTP and DB histograms are recorded) instead of the SDK; and the SDK scrape merged over 4
workers (3 peers answering over unix sockets, as under gunicorn). Target (issue 3): rendering
at most a fifth of ``generate_latest``'s time.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider

from benchmarks.harness import Comparison, Target, compare
from otel_django.metrics.exposition import Renderer, Snapshotter
from otel_django.metrics.http import DURATION, DURATION_BUCKETS
from otel_django.metrics.multiprocess import Exchange
from otel_django.metrics.pipeline import Pipeline
from otel_django.metrics.reader import ScrapeReader

ROUTES, METHODS, STATUSES = 500, ("GET", "POST", "PUT"), (200, 404, 500)
LABELS = ["http_request_method", "http_route", "http_response_status_code", "url_scheme"]


def _observations(seed: int = 3) -> list[tuple[str, str, int, float]]:
    rng = random.Random(seed)
    return [
        (method, f"api/v1/resource{i}/<int:pk>/", status, rng.expovariate(10))
        for i in range(ROUTES)
        for method in METHODS
        for status in STATUSES
        for _ in range(2)
    ]


def _otel_pipeline(observations: list[tuple[str, str, int, float]]) -> Pipeline:
    reader = ScrapeReader()
    provider = MeterProvider(metric_readers=[reader], exemplar_filter=AlwaysOffExemplarFilter())
    histogram = provider.get_meter("bench").create_histogram(
        "http.server.request.duration", unit="s",
        explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
    )  # fmt: skip
    for method, route, status, value in observations:
        histogram.record(
            value,
            {
                "http.request.method": method,
                "http.route": route,
                "http.response.status_code": status,
                "url.scheme": "http",
            },
        )
    return Pipeline(reader, limit=10_000)


def _aggregate_pipeline(observations: list[tuple[str, str, int, float]]) -> Pipeline:
    reader = ScrapeReader()
    MeterProvider(metric_readers=[reader])
    pipeline = Pipeline(reader, limit=10_000)
    histogram = pipeline.histogram(DURATION)
    for method, route, status, value in observations:
        histogram.record(value, (method, "http", status, route, None))
    return pipeline


def _prometheus_client(observations: list[tuple[str, str, int, float]]) -> object:
    import prometheus_client
    from prometheus_client import CollectorRegistry, Histogram

    prometheus_client.disable_created_metrics()
    registry = CollectorRegistry()
    histogram = Histogram(
        "http_server_request_duration_seconds",
        "Duration of HTTP server requests.",
        LABELS,
        buckets=DURATION_BUCKETS,
        registry=registry,
    )
    for method, route, status, value in observations:
        histogram.labels(method, route, str(status), "http").observe(value)
    return registry


def run(quick: bool) -> list[Comparison]:
    from prometheus_client import generate_latest

    observations = _observations()
    registry = _prometheus_client(observations)
    pipeline = _otel_pipeline(observations)
    aggregated = _aggregate_pipeline(observations)
    snapshot = Snapshotter().take(pipeline.reader.scrape())
    renderer = Renderer()
    rounds = 3 if quick else 9

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "exchange"
        merged = _otel_pipeline(observations)
        merged.start_exchange(directory)
        peers = [_otel_pipeline(observations) for _ in range(3)]
        for peer in peers:
            peer.exchange = Exchange(directory, peer.local_snapshot, peer.limit)
            peer.exchange.start()
        try:
            family = "http_server_request_duration_seconds"
            together = merged.snapshot().families[family].points
            alone = pipeline.snapshot().families[family].points
            assert len(together) == len(alone) == 4_500
            in_place = aggregated.snapshot().families[family].points
            assert {k: [v[0], v[1], list(v[2])] for k, v in alone.items()} == in_place
            assert sum(v[0] for v in together.values()) == 4 * sum(v[0] for v in alone.values())
            comparison = compare(
                "one /metrics scrape of 4,500 histogram series",
                {
                    "prometheus_client generate_latest": lambda: generate_latest(registry),  # type: ignore[arg-type]
                    "otel_django render (snapshot taken)": lambda: renderer.render(snapshot),
                    "otel_django scrape (collect+render)": pipeline.exposition,
                    "otel_django scrape, in-place histograms": aggregated.exposition,
                    "otel_django scrape, 4 workers merged": merged.exposition,
                },
                unit="scrape",
                inner=1,
                rounds=rounds,
                warmup_rounds=1,
                baseline="prometheus_client generate_latest",
                targets=(
                    Target(
                        "render <= 1/5 of generate_latest",
                        "otel_django render (snapshot taken)",
                        "prometheus_client generate_latest",
                        0.2,
                        measure="median",
                    ),
                    Target(
                        "whole scrape <= 1/5 of generate_latest",
                        "otel_django scrape (collect+render)",
                        "prometheus_client generate_latest",
                        0.2,
                        measure="median",
                    ),
                ),
                notes="Target: otel_django render <= 1/5 of generate_latest. '4 workers merged' "
                "asks 3 peer workers (same process here, so no parallelism) for their "
                "snapshots over unix sockets and adds them up; each worker holds all 4,500 "
                "series, the worst case.",
            )
        finally:
            for peer in (*peers, merged, aggregated):
                peer.close()
    return [comparison]


if __name__ == "__main__":
    import sys

    for result in run(quick="--quick" in sys.argv):
        print(result.title)
        base = result.baseline
        for name, fig in result.figures.items():
            ratio = f"  x{result.ratio(name, base):.3f}" if base else ""
            print(
                f"  {name:40s} {fig.median_us / 1000:9.1f} ms  (IQR {fig.spread_pct:4.1f} %){ratio}"
            )
