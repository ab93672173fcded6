"""bench_exemplars runs: every candidate gets a figure and each target a value. Timings are
never asserted."""

from __future__ import annotations

from benchmarks import bench_exemplars


def test_quick_run_gives_every_candidate_a_figure() -> None:
    record, scrape = bench_exemplars.run(quick=True)  # quick: no callgrind pass
    assert set(record.figures) == set(bench_exemplars._record_candidates())
    assert record.baseline == bench_exemplars.BASELINE
    assert {t.name for t in record.targets} == set(bench_exemplars.WITH_EXEMPLAR)
    assert all(record.target_value(t) is not None for t in record.targets)
    assert len(scrape.figures) == 3 and all(f.median_us > 0 for f in scrape.figures.values())
