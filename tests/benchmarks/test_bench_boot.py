"""The boot benchmark runs: every candidate gets a figure and the targets a value (never
asserted: timings are not tests)."""

from __future__ import annotations

import pytest

from benchmarks import bench_boot


@pytest.mark.slow
def test_quick_boot_run_gives_every_candidate_a_figure() -> None:
    boot, added = bench_boot.run(quick=True)
    assert set(boot.figures) == {
        "python",
        "floor",
        "bare app",
        "otel_django app",
        "bare check",
        "otel_django check",
    }
    assert all(f.median_us > 0 and f.rounds == 3 for f in boot.figures.values())
    assert set(added.figures) == {
        "floor - python",
        "otel_django app - bare app",
        "otel_django check - bare check",
    }
    assert all(added.target_value(t) is not None for t in added.targets)
