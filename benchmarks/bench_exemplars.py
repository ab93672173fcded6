"""The cost of exemplars: per recorded measurement, and on a scrape.

1. One ``Aggregate.record`` of ``http.server.request.duration`` (the in-place histogram of the
   request path, ``metrics/aggregate.py``): without a span context (how it was recorded
   before exemplars), with an unsampled span's context, with a sampled span's (the exemplar
   is kept: the default ``trace_based`` filter), with a sampled span under ``always_off``, and
   what the middleware really pays: ``span.get_span_context()`` of an SDK span plus the
   record. Target (issue 14): an exemplar adds at most 1 µs per recorded measurement, stated
   as a ratio against the record without, in the same run. Wall time on a shared machine is
   noisy at this scale, so the same candidates are also counted with callgrind (instructions
   per measurement: each candidate's process minus one that only sets up, hash seed fixed),
   and those exact ratios are stated in µs at the wall-time median of the record without.
2. One whole scrape (collect, snapshot, render) of 4,500 in-place histogram series (500
   routes x 3 methods x 3 statuses, as ``bench_scrape``) in OpenMetrics with exemplars in
   every bucket that was hit, against the same series recorded without, and the 0.0.4 text
   format of the former (which never shows them).
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanContext, TraceFlags

from benchmarks.harness import Comparison, Figure, Target, compare
from otel_django.metrics.aggregate import Aggregate
from otel_django.metrics.http import DURATION
from otel_django.metrics.pipeline import Pipeline
from otel_django.metrics.reader import ScrapeReader

VALUES = ("GET", "http", 200, "api/v1/orders/<int:pk>/", None)
SAMPLED = SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, False, TraceFlags(1))
UNSAMPLED = SpanContext(
    0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, False, TraceFlags(0)
)


def _record_candidates() -> dict[str, object]:
    plain = Aggregate(DURATION, limit=100)
    trace_based = Aggregate(DURATION, limit=100)
    always_off = Aggregate(DURATION, limit=100, exemplar_filter="always_off")
    via_span = Aggregate(DURATION, limit=100)
    span = TracerProvider().get_tracer("bench").start_span("GET")
    span.end()
    rng = random.Random(5)
    values = [rng.expovariate(10) for _ in range(256)]
    counter = iter(range(1 << 62))

    def value() -> float:
        return values[next(counter) & 255]

    return {
        "record, no span context": lambda: plain.record(value(), VALUES),
        "record, unsampled span": lambda: trace_based.record(value(), VALUES, UNSAMPLED),
        "record, sampled span (exemplar kept)": lambda: trace_based.record(
            value(), VALUES, SAMPLED
        ),
        "record, sampled span, always_off": lambda: always_off.record(value(), VALUES, SAMPLED),
        "get_span_context() + record, sampled": lambda: via_span.record(
            value(), VALUES, span.get_span_context()
        ),
    }


BASELINE = "record, no span context"
WITH_EXEMPLAR = ("record, sampled span (exemplar kept)", "get_span_context() + record, sampled")
CALLGRIND_MEASUREMENTS = 5_000
_CHILD = """
import sys
from benchmarks.bench_exemplars import _record_candidates
candidates = _record_candidates()
name, n = sys.argv[1], int(sys.argv[2])
fn = candidates[name] if n else None
for _ in range(n):
    fn()
"""


def _instructions(name: str, n: int) -> int:
    """Instructions callgrind counts for a process that records ``n`` times with ``name``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
             sys.executable, "-c", _CHILD, name, str(n)],
            cwd=Path(__file__).resolve().parents[1],
            env={**os.environ, "PYTHONHASHSEED": "0"},
            check=True, capture_output=True, timeout=900,
        )  # fmt: skip
        match = re.search(r"^summary: (\d+)", out.read_text(), re.MULTILINE)
        assert match, "no callgrind summary"
        return int(match.group(1))


def _counted(wall: Comparison) -> Comparison:
    """The record candidates counted by callgrind, stated in µs at the wall-time baseline."""
    setup = _instructions(BASELINE, 0)
    per = {
        name: (_instructions(name, CALLGRIND_MEASUREMENTS) - setup) / CALLGRIND_MEASUREMENTS
        for name in wall.figures
    }
    base_us = wall.figures[BASELINE].median_us
    figures = {
        name: Figure(us, us, us, 1)
        for name, us in ((n, base_us * i / per[BASELINE]) for n, i in per.items())
    }
    ceiling = (base_us + 1.0) / base_us
    return Comparison(
        "one in-place histogram measurement, callgrind instruction ratios (in us at the "
        "wall-time baseline)",
        "measurement",
        figures,
        BASELINE,
        notes="Instructions per measurement: "
        + ", ".join(f"{name}: {count:.0f}" for name, count in per.items())
        + f". The record without is {base_us:.3f} us (wall-time median of the same run).",
        targets=tuple(
            Target(f"{name}: <= +1 us per measurement", name, BASELINE, ceiling, "median")
            for name in WITH_EXEMPLAR
        ),
    )


def _pipeline(exemplars: bool) -> Pipeline:
    reader = ScrapeReader()
    MeterProvider(metric_readers=[reader])
    pipeline = Pipeline(reader, limit=10_000)
    aggregate = pipeline.histogram(DURATION)
    rng = random.Random(3)
    for i in range(500):
        for method in ("GET", "POST", "PUT"):
            for status in (200, 404, 500):
                values = (method, "http", status, f"api/v1/resource{i}/<int:pk>/", None)
                for n in range(4):
                    context = SpanContext(rng.getrandbits(128) | 1, n + 1, False, TraceFlags(1))
                    aggregate.record(rng.expovariate(10), values, context if exemplars else None)
    return pipeline


def run(quick: bool) -> list[Comparison]:
    record = compare(
        "one in-place histogram measurement, with and without its exemplar",
        _record_candidates(),  # type: ignore[arg-type]
        unit="measurement",
        inner=2_000 if quick else 50_000,
        rounds=3 if quick else 15,
        baseline=BASELINE,
        notes="Target: an exemplar adds at most 1 us per recorded measurement (sampled span "
        "against no span context, medians of the same run). The middleware calls "
        "get_span_context() once per request and passes it to the duration and queries "
        "histograms.",
    )
    base = record.figures[BASELINE].median_us
    ceiling = (base + 1.0) / base  # "at most 1 us more", as a ratio of this run's medians
    record = dataclasses.replace(
        record,
        targets=tuple(
            Target(f"{name}: <= +1 us per measurement", name, BASELINE, ceiling, "median")
            for name in WITH_EXEMPLAR
        ),
    )
    counted = [_counted(record)] if not quick and shutil.which("valgrind") else []

    with_exemplars, without = _pipeline(True), _pipeline(False)
    scrape = compare(
        "one scrape of 4,500 in-place histogram series, exemplars in every occupied bucket",
        {
            "OpenMetrics, no exemplars": lambda: without.exposition(True),
            "OpenMetrics, with exemplars": lambda: with_exemplars.exposition(True),
            "0.0.4 text, with exemplars (never shown)": lambda: with_exemplars.exposition(False),
        },
        unit="render",
        inner=1,
        rounds=3 if quick else 9,
        warmup_rounds=1,
        baseline="OpenMetrics, no exemplars",
        notes="Same 4,500 series (4 measurements each, ~18,000 exemplars); exemplar ids and "
        "text are formatted once and reused while the exemplar stays the newest.",
    )
    return [record, *counted, scrape]


if __name__ == "__main__":
    import sys

    for result in run(quick="--quick" in sys.argv):
        print(result.title)
        base = result.baseline
        for name, fig in result.figures.items():
            ratio = f"  x{result.ratio(name, base):.3f}" if base else ""
            print(f"  {name:44s} {fig.median_us:10.3f} us  (IQR {fig.spread_pct:4.1f} %){ratio}")
        for target in result.targets:
            value = result.target_value(target)
            print(f"  target {target.label}: {value:.3f} (at most {target.at_most:.3f})")
        if result.notes:
            print(f"  {result.notes}")
