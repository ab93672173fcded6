"""The benchmarks run: every configuration produces a figure. Timings are never asserted."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks import bench_instructions, bench_requests, callgrind, harness, run
from benchmarks.request_worker import CONFIGURATIONS, clean_environ
from tests.support.services import IN_CI

REPO = Path(__file__).resolve().parents[2]
# The benchmarks' own environment (scripts/setup-bench): the stacks compared are installed
# there, not beside the tests.
BENCH_PYTHON = REPO / ".venv-bench" / "bin" / "python"


def _bench_python() -> str:
    if BENCH_PYTHON.exists():
        return str(BENCH_PYTHON)
    message = f"{BENCH_PYTHON} is missing (bash scripts/setup-bench)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def _comparison() -> harness.Comparison:
    figures = {
        "bare": harness.figure([100.0, 110.0, 90.0]),
        "cheap": harness.figure([150.0, 160.0, 140.0]),
        "dear": harness.figure([300.0, 310.0, 290.0]),
    }
    targets = (
        harness.Target("cheap costs at most half of dear", "cheap", "dear", 0.5),
        harness.Target("dear costs at most cheap", "dear", "cheap", 1.0),
    )
    return harness.Comparison("Demo", "request", figures, "bare", "a note", targets)


def test_comparison_round_trips_through_json_with_overheads_and_targets() -> None:
    comparison = _comparison()
    data = json.loads(json.dumps(comparison.as_dict()))

    assert harness.Comparison.from_dict(data) == comparison
    assert data["figures"]["dear"]["overhead_us"] == pytest.approx(200.0)
    assert data["figures"]["dear"]["ratio_to_baseline"] == pytest.approx(3.0)
    assert [t["met"] for t in data["targets"]] == [True, False]
    assert data["targets"][0]["value"] == pytest.approx(0.25)


def test_table_shows_every_candidate_overhead_ratios_and_target_verdicts() -> None:
    table = run.format_comparison(_comparison())

    for name in ("bare", "cheap", "dear", "a note", "overhead ratios"):
        assert name in table
    assert "+200.0" in table
    assert "cheap costs at most half of dear: 0.25 (at most 0.5) met" in table
    assert "dear costs at most cheap: 4.00 (at most 1) NOT met" in table


def test_compare_interleaves_candidates_after_warm_up() -> None:
    calls: list[str] = []

    def candidate(name: str) -> Callable[[int], float]:
        def batch(n: int) -> float:
            calls.append(name)
            return n * 1e-6

        return batch

    comparison = harness.compare_batches(
        "t",
        {"a": candidate("a"), "b": candidate("b")},
        unit="op",
        inner=10,
        rounds=3,
        warmup_rounds=1,
        baseline="a",
    )

    assert calls == ["a", "b"] * 4
    assert comparison.figures["b"].median_us == pytest.approx(1.0)
    assert comparison.figures["b"].rounds == 3


def test_runner_discovers_every_bench_module() -> None:
    names = run.discover()

    assert "bench_requests" in names
    assert all(name.startswith("bench_") for name in names)


def test_a_configuration_that_is_not_what_its_label_says_is_refused() -> None:
    stats = {"requests": 10, "spans_exported": 0, "middleware": []}

    with pytest.raises(bench_requests.WorkerError, match="OtelDjangoMiddleware missing"):
        bench_requests.check_configuration("otel_django", stats)
    with pytest.raises(bench_requests.WorkerError, match="0 spans for 10 requests"):
        bench_requests.check_configuration(
            "otel_django", {**stats, "middleware": ["otel_django.middleware.OtelDjangoMiddleware"]}
        )


@pytest.mark.slow
def test_quick_run_gives_every_request_configuration_a_figure(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    process = subprocess.run(
        [
            _bench_python(),
            "-m",
            "benchmarks.run",
            "--quick",
            "--only",
            "requests",
            "--json",
            str(out),
        ],
        cwd=REPO,
        env=clean_environ(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["failed"] == []
    assert report["machine"]["python"]
    comparisons = report["benchmarks"]["bench_requests"]["comparisons"]
    by_title = {c["title"]: c for c in comparisons}
    expected = {
        bench_requests.MAIN_TITLE + " (CPU time)": bench_requests.MAIN,
        bench_requests.MAIN_TITLE + " (wall clock)": bench_requests.MAIN,
        bench_requests.BY_CONCERN_TITLE + " (CPU time)": bench_requests.BY_CONCERN,
    }
    assert set(by_title) == set(expected)
    for title, keys in expected.items():
        figures = by_title[title]["figures"]
        assert list(figures) == [CONFIGURATIONS[k].label for k in keys]
        for figure in figures.values():
            assert figure["median_us"] > 0
            assert figure["rounds"] >= 1
            assert figure["overhead_us"] is not None
    # Quick mode is too short for stable ratios: a target's value may even be undefined
    # (an overhead at or below zero). Only that every target is reported is checked.
    targets = by_title[bench_requests.MAIN_TITLE + " (CPU time)"]["targets"]
    assert [t["name"] for t in targets] == [
        CONFIGURATIONS[k].label for k in ("otel_django", "otel_django_10pct")
    ]
    for comparison in comparisons:
        assert comparison["title"] in process.stdout


def test_instruction_figures_subtract_the_empty_window_and_weigh_a_sampled_ratio() -> None:
    dumps = [("calibration", 100), ("calibration", 102), ("calibration", 100)]
    dumps += [("q=1 request=0", 1100), ("q=1 request=1", 5100), ("q=1 request=2", 1100)]
    dumps += [("q=1 flush", 2100)]
    every = bench_instructions.figures_of(dumps, {"1": [True, True, True]}, 1.0)[1]
    tenth = bench_instructions.figures_of(dumps, {"1": [False, True, False]}, 0.1)[1]

    assert every["per_request"] == pytest.approx((1000 + 5000 + 1000 + 2000) / 3)
    # 0.9 x an unsampled request + 0.1 x (a sampled one + the whole export, its own)
    assert tenth["per_request"] == pytest.approx(0.9 * 1000 + 0.1 * (5000 + 2000))
    assert tenth["sampled"] == 1 and tenth["requests"] == 3


def test_callgrind_dumps_are_read_in_order_by_label(tmp_path: Path) -> None:
    base = tmp_path / "callgrind.out"
    for n, (label, count) in enumerate([("calibration", 7), ("q=1 request=0", 12)], 1):
        Path(f"{base}.{n}").write_text(
            f"version: 1\ndesc: Trigger: Client Request: {label}\nevents: Ir\nsummary: {count}\n"
        )
    base.write_text("desc: Trigger: Program termination\nsummary: 1\n")

    assert callgrind.read_dumps(base) == [("calibration", 7), ("q=1 request=0", 12)]


def test_the_instruction_summary_table_has_a_per_query_column() -> None:
    def fig(x: float) -> dict[str, float]:
        return {"per_request": x, "p25": x, "p75": x, "requests": 1, "sampled": 1, "export": 0}

    results = {
        "bare": {1: fig(1e6), 50: fig(50e6)},
        "otel_django": {1: fig(2e6), 50: fig(60e6)},
    }
    table = bench_instructions.summary_table(results, ["bare", "otel_django"])

    assert "| 1 query | 50 queries | per query |" in table
    assert "| 1. bare Django | 1.00 M | 50.00 M | 1,000 k |" in table
    assert "| 4. otel_django, all on | +1.00 M | +10.00 M | +184 k |" in table


@pytest.mark.slow
def test_quick_instruction_counts_give_every_configuration_a_figure(tmp_path: Path) -> None:
    python = _bench_python()
    problem = callgrind.missing_tools()
    if problem:
        if IN_CI:
            pytest.fail(problem)
        pytest.skip(problem)
    out = tmp_path / "results.json"
    process = subprocess.run(
        [python, "-m", "benchmarks.run", "--quick", "--only", "instructions", "--json", str(out)],
        cwd=REPO,
        env=clean_environ(os.environ),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )

    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    report = json.loads(out.read_text())
    comparisons = report["benchmarks"]["bench_instructions"]["comparisons"]
    labels = [CONFIGURATIONS[k].label for k in bench_instructions.CONFIGS]
    titles = [c["title"] for c in comparisons]
    assert len(titles) == len(bench_instructions.QUERIES) + 1  # one per query count, marginal
    for comparison in comparisons:
        assert comparison["measure"] == "instructions"
        assert list(comparison["figures"]) == labels
        assert all(f["median_us"] > 0 for f in comparison["figures"].values())
    assert "per query |" in comparisons[-1]["notes"]
    assert [t["name"] for c in comparisons for t in c["targets"]] == [
        CONFIGURATIONS[k].label for k in ("otel_django", "otel_django_10pct", "otel_django")
    ]
