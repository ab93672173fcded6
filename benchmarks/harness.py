"""Interleaved comparisons: candidates run A B C A B C ..., warm-up first, medians and ratios.

Absolute times vary between runs and machines; ratios between candidates measured in the
same run, interleaved, are what the targets are stated in.
"""

from __future__ import annotations

import dataclasses
import gc
import statistics
import time
from collections.abc import Callable, Mapping


@dataclasses.dataclass(frozen=True)
class Figure:
    """Time per operation of one candidate, in microseconds, over the rounds."""

    median_us: float
    p25_us: float
    p75_us: float
    rounds: int

    @property
    def spread_pct(self) -> float:
        """Inter-quartile range as a percentage of the median."""
        return 100.0 * (self.p75_us - self.p25_us) / self.median_us if self.median_us else 0.0


@dataclasses.dataclass(frozen=True)
class Comparison:
    title: str
    unit: str  # what one operation is, e.g. "request", "log line", "scrape"
    figures: Mapping[str, Figure]
    baseline: str | None = None
    notes: str = ""

    def overhead_us(self, name: str) -> float | None:
        if self.baseline is None:
            return None
        return self.figures[name].median_us - self.figures[self.baseline].median_us

    def ratio(self, name: str, other: str) -> float:
        return self.figures[name].median_us / self.figures[other].median_us

    def as_dict(self) -> dict[str, object]:
        return {
            "title": self.title,
            "unit": self.unit,
            "baseline": self.baseline,
            "notes": self.notes,
            "figures": {
                name: {**dataclasses.asdict(f), "spread_pct": round(f.spread_pct, 1),
                       "overhead_us": self.overhead_us(name)}
                for name, f in self.figures.items()
            },
        }


def figure(samples_us: list[float]) -> Figure:
    quartiles = statistics.quantiles(samples_us, n=4) if len(samples_us) > 1 else samples_us * 3
    return Figure(statistics.median(samples_us), quartiles[0], quartiles[2], len(samples_us))


def compare(
    title: str,
    candidates: Mapping[str, Callable[[], object]],
    *,
    unit: str,
    inner: int,
    rounds: int,
    warmup_rounds: int = 2,
    baseline: str | None = None,
    notes: str = "",
) -> Comparison:
    """Times each candidate ``inner`` calls at a time, interleaved over ``rounds`` rounds."""
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for round_number in range(warmup_rounds + rounds):
        for name, fn in candidates.items():
            gc.collect()
            gc.disable()
            try:
                start = time.perf_counter()
                for _ in range(inner):
                    fn()
                elapsed = time.perf_counter() - start
            finally:
                gc.enable()
            if round_number >= warmup_rounds:
                samples[name].append(elapsed / inner * 1e6)
    return Comparison(title, unit, {n: figure(s) for n, s in samples.items()}, baseline, notes)
