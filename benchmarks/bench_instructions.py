"""Instructions per request, export included: bare Django, django-prometheus, upstream OTel,
otel_django at 100 % and 10 %, Pydantic Logfire, at 1, 10 and 50 ORM queries per request.

Each configuration runs in its own ``request_worker`` process under
``valgrind --tool=callgrind`` (``callgrind.py``). The worker warms up uninstrumented, then for
each query count Q serves R requests, each between a zero and a dump of callgrind's counters
(a *window*), and ends with one window that exports every span of those requests over
OTLP/HTTP to the receiver process (``otlp_sink.py``) by ``force_flush`` on the measured
thread. R is sized so that the export is one batch of just under 512 spans, the batch
processor's default batch: 255 requests at 1 query (2 spans each), 46 at 10, 10 at 50.
Nothing is exported by the batch processor's thread meanwhile (its schedule delay is set to
an hour), so every instruction of the export is in a window, and callgrind counts all threads.

Per request: the windows' total over the R requests, export window included, minus the cost
of an empty window (the client requests themselves, ≈ 3 k). At 10 % sampling, which requests
are sampled is chance; the figure is therefore 0.9 x the mean unsampled request + 0.1 x (the
mean sampled request + its share of the export window), each mean taken over the requests of
that kind in the run. The per-query marginal cost is (figure at 50 - figure at 1) / 49.

Instruction counts do not move with the machine's load (repeat runs agree within a few
tenths of a percent), so the ratios against the targets are read from one run.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import callgrind, harness
from .bench_requests import check_configuration, prepare_database
from .otlp_sink import Sink
from .request_worker import CONFIGURATIONS, REPO, clean_environ

CONFIGS = ("bare", "prometheus", "upstream", "otel_django", "otel_django_10pct", "logfire")
QUERIES = (1, 10, 50)
FULL_REQUESTS = {1: 255, 10: 46, 50: 10}
QUICK_REQUESTS = {1: 4, 10: 2, 50: 1}
WORKER_TIMEOUT_S = 3600.0


def _env(key: str, sink: Sink) -> dict[str, str]:
    return {
        **clean_environ(os.environ),
        "PYTHONHASHSEED": "0",
        "OTEL_SERVICE_NAME": key,
        "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint,
        # Every export happens in the flush window, on the measured thread.
        "OTEL_BSP_SCHEDULE_DELAY": "3600000",
        "OTEL_BLRP_SCHEDULE_DELAY": "3600000",
        "OTEL_METRIC_EXPORT_INTERVAL": "3600000",
    }


def figures_of(
    dumps: Sequence[tuple[str, int]], sampled: Mapping[str, Sequence[bool]], ratio: float
) -> dict[int, dict[str, Any]]:
    """Per query count: instructions per request and what it is made of (see the docstring)."""
    calibration = [count for label, count in dumps if label == "calibration"]
    empty = statistics.median(calibration) if calibration else 0
    windows: dict[int, list[int]] = {}
    flush: dict[int, int] = {}
    for label, count in dumps:
        if label == "calibration":
            continue
        q_part, _, what = label.partition(" ")
        queries = int(q_part.removeprefix("q="))
        if what == "flush":
            flush[queries] = count - empty
        else:
            windows.setdefault(queries, []).append(count - empty)
    result = {}
    for queries, counts in windows.items():
        flags = list(sampled[str(queries)])
        if len(flags) != len(counts):
            raise ValueError(f"q={queries}: {len(counts)} windows, {len(flags)} sampling flags")
        export = flush[queries]
        kept = [c for c, f in zip(counts, flags, strict=True) if f]
        dropped = [c for c, f in zip(counts, flags, strict=True) if not f]
        if 0.0 < ratio < 1.0 and kept and dropped:
            per_request = (1 - ratio) * statistics.fmean(dropped) + ratio * (
                statistics.fmean(kept) + export / len(kept)
            )
        else:  # everything sampled, nothing traced, or too few requests to tell
            per_request = (sum(counts) + export) / len(counts)
        quartiles = statistics.quantiles(counts, n=4) if len(counts) > 1 else counts * 3
        result[queries] = {
            "per_request": per_request,
            "p25": quartiles[0],
            "p75": quartiles[2],
            "requests": len(counts),
            "sampled": len(kept),
            "export": export,
        }
    return result


def measure(
    key: str,
    plan: Mapping[int, int],
    db_path: str,
    sink: Sink,
    helper: Path,
    directory: Path,
    quick: bool = False,
) -> dict[int, dict[str, Any]]:
    """Runs one configuration under callgrind; its figures per query count."""
    config = CONFIGURATIONS[key]
    work = directory / key
    work.mkdir()
    out_file, result_file = work / "callgrind.out", work / "result.json"
    spec = ",".join(f"{q}:{r}" for q, r in plan.items())
    argv = [sys.executable, "-m", "benchmarks.request_worker", "--config", key, "--db", db_path]
    argv += ["--count", spec, "--helper", str(helper), "--out", str(result_file)]
    if quick:  # few warm-up requests; a ratio-sampled run may see one kind only
        argv += ["--warmup", "5", "--any-kinds"]
    spans_before = sink.spans(key)
    with (work / "log.txt").open("wb") as log:
        process = subprocess.run(
            callgrind.command(out_file, argv),
            cwd=REPO,
            env=_env(key, sink),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=WORKER_TIMEOUT_S,
            check=False,
        )
    if process.returncode != 0 or not result_file.exists():
        tail = (work / "log.txt").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{key}: worker failed ({process.returncode})\n{tail}")
    result = json.loads(result_file.read_text())
    dumps = callgrind.read_dumps(out_file)
    for path in work.glob("callgrind.out*"):
        path.unlink()
    spans = sink.spans(key) - spans_before
    stats = {**result["stats"], "spans_exported": spans if config.traced else None}
    warmup = 5 if quick else 30
    # Every request served (one check, warm-up, the measured ones) fully recorded.
    full = 2 + sum((warmup + len(result["sampled"][str(q)])) * (1 + q) for q in plan)
    check_configuration(key, stats, full_spans=full)
    return figures_of(dumps, result["sampled"], config.sampling_ratio)


def _queries(q: int) -> str:
    return f"{q} query" if q == 1 else f"{q} queries"


def comparisons(
    results: Mapping[str, Mapping[int, Mapping[str, Any]]], keys: Sequence[str]
) -> list[harness.Comparison]:
    label = {k: CONFIGURATIONS[k].label for k in keys}
    baseline = label[keys[0]]
    out = []
    counts = sorted({q for r in results.values() for q in r})
    for q in counts:
        figures = {
            label[k]: harness.Figure(
                results[k][q]["per_request"],
                results[k][q]["p25"],
                results[k][q]["p75"],
                results[k][q]["requests"],
            )
            for k in keys
        }
        targets = []
        if q == 1:
            targets = _one_query_targets(label)
        notes = "; ".join(
            f"{label[k]}: {results[k][q]['sampled']} of {results[k][q]['requests']} sampled"
            for k in keys
            if 0.0 < CONFIGURATIONS[k].sampling_ratio < 1.0
        )
        out.append(
            harness.Comparison(
                f"Instructions per request, {_queries(q)}",
                "request",
                figures,
                baseline,
                notes,
                tuple(t for t in targets if t.name in figures and t.other in figures),
                measure="instructions",
            )
        )
    if len(counts) >= 2:
        low, high = counts[0], counts[-1]
        marginal = {
            label[k]: _constant(
                (results[k][high]["per_request"] - results[k][low]["per_request"]) / (high - low)
            )
            for k in keys
        }
        targets = [
            harness.Target(
                "per-query marginal overhead: otel_django at most 0.5x upstream's",
                label.get("otel_django", ""),
                label.get("upstream", ""),
                0.5,
            )
        ]
        out.append(
            harness.Comparison(
                f"Per-query marginal cost (figure at {high} - figure at {low}) / {high - low}",
                "query",
                marginal,
                baseline,
                summary_table(results, keys),
                tuple(t for t in targets if t.name in marginal and t.other in marginal),
                measure="instructions",
            )
        )
    return out


def _constant(value: float) -> harness.Figure:
    return harness.Figure(value, value, value, 1)


def _one_query_targets(label: Mapping[str, str]) -> list[harness.Target]:
    return [
        harness.Target(
            "otel_django, everything on, at most 1.5x django-prometheus's overhead",
            label.get("otel_django", ""),
            label.get("prometheus", ""),
            1.5,
        ),
        harness.Target(
            "otel_django at 10 % at most 0.5x django-prometheus's overhead",
            label.get("otel_django_10pct", ""),
            label.get("prometheus", ""),
            0.5,
        ),
    ]


def _millions(value: float, signed: bool = False) -> str:
    return f"{value / 1e6:+.2f} M" if signed else f"{value / 1e6:.2f} M"


def summary_table(
    results: Mapping[str, Mapping[int, Mapping[str, Any]]], keys: Sequence[str]
) -> str:
    """The README's table: absolute for the baseline, overheads for the others, and the
    per-query marginal overhead (thousands)."""
    counts = sorted({q for r in results.values() for q in r})
    low, high = counts[0], counts[-1]
    base = results[keys[0]]

    def marginal(k: str) -> float:
        r = results[k]
        return (r[high]["per_request"] - r[low]["per_request"]) / (high - low)

    header = "| configuration | " + " | ".join(_queries(q) for q in counts) + " | per query |"
    lines = [header, "|---|" + "---:|" * (len(counts) + 1)]
    for k in keys:
        if k == keys[0]:
            cells = [_millions(base[q]["per_request"]) for q in counts]
            cells.append(f"{marginal(k) / 1e3:,.0f} k")
        else:
            cells = [
                _millions(results[k][q]["per_request"] - base[q]["per_request"], signed=True)
                for q in counts
            ]
            cells.append(f"{(marginal(k) - marginal(keys[0])) / 1e3:+,.0f} k")
        lines.append(f"| {CONFIGURATIONS[k].label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_all(
    keys: Sequence[str], plan: Mapping[int, int], jobs: int = 2, quick: bool = False
) -> dict[str, dict[int, dict[str, Any]]]:
    helper = callgrind.build_helper()
    with tempfile.TemporaryDirectory(prefix="otel-django-callgrind-") as tmp, Sink() as sink:
        directory = Path(tmp)
        db_path = prepare_database(tmp)
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = {
                k: pool.submit(measure, k, plan, db_path, sink, helper, directory, quick)
                for k in keys
            }
            return {k: f.result() for k, f in futures.items()}


def run(quick: bool) -> list[harness.Comparison]:
    plan = QUICK_REQUESTS if quick else FULL_REQUESTS
    return comparisons(run_all(CONFIGS, plan, quick=quick), CONFIGS)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_instructions")
    parser.add_argument("configs", nargs="*", default=list(CONFIGS), metavar="CONFIG")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--queries", default="1,10,50", help="query counts, e.g. 1,50")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", metavar="PATH", help="also write the raw figures")
    args = parser.parse_args(argv)
    source = QUICK_REQUESTS if args.quick else FULL_REQUESTS
    wanted = [int(q) for q in args.queries.split(",")]
    plan = {q: source.get(q, max(1, 510 // (q + 1))) for q in wanted}
    results = run_all(args.configs, plan, args.jobs, args.quick)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    from .run import format_comparison

    for comparison in comparisons(results, args.configs):
        print(format_comparison(comparison), end="\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
