"""Interleaved comparisons: candidates run A B C A B C ..., warm-up first, medians and ratios.

Absolute times vary between runs and machines; ratios between candidates measured in the
same run, interleaved, are what the targets are stated in.

Two ways to time candidates:

* :func:`compare` times in-process callables, ``inner`` calls per sample, GC off while timing;
* :func:`compare_batches` asks each candidate to time ``inner`` operations itself and return
  the elapsed seconds: for candidates that live in other processes (see ``bench_requests``).
"""

from __future__ import annotations

import dataclasses
import gc
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal


@dataclasses.dataclass(frozen=True)
class Figure:
    """Time per operation of one candidate, in microseconds, over the rounds (or, in a
    comparison whose ``measure`` is ``"instructions"``, instructions per operation: then
    ``median_us`` holds the figure itself and ``p25_us``/``p75_us`` the quartiles of the
    single operations it is made of)."""

    median_us: float
    p25_us: float
    p75_us: float
    rounds: int

    @property
    def spread_pct(self) -> float:
        """Inter-quartile range as a percentage of the median."""
        return 100.0 * (self.p75_us - self.p25_us) / self.median_us if self.median_us else 0.0


@dataclasses.dataclass(frozen=True)
class Target:
    """A goal stated as a ratio: ``name``'s measure is at most ``at_most`` times ``other``'s.

    ``measure="overhead"`` compares overheads over the comparison's baseline, ``"median"``
    compares the medians themselves. Targets are reported, never asserted.
    """

    label: str
    name: str
    other: str
    at_most: float
    measure: Literal["overhead", "median"] = "overhead"


@dataclasses.dataclass(frozen=True)
class Comparison:
    title: str
    unit: str  # what one operation is, e.g. "request", "log line", "scrape"
    figures: Mapping[str, Figure]
    baseline: str | None = None
    notes: str = ""
    targets: Sequence[Target] = ()
    measure: Literal["us", "instructions"] = "us"

    def overhead_us(self, name: str) -> float | None:
        if self.baseline is None:
            return None
        return self.figures[name].median_us - self.figures[self.baseline].median_us

    def ratio(self, name: str, other: str) -> float:
        return self.figures[name].median_us / self.figures[other].median_us

    def overhead_ratio(self, name: str, other: str) -> float | None:
        """``name``'s overhead over the baseline divided by ``other``'s (None if undefined)."""
        mine, theirs = self.overhead_us(name), self.overhead_us(other)
        if mine is None or theirs is None or theirs <= 0:
            return None
        return mine / theirs

    def target_value(self, target: Target) -> float | None:
        if target.measure == "median":
            return self.ratio(target.name, target.other)
        return self.overhead_ratio(target.name, target.other)

    def as_dict(self) -> dict[str, object]:
        figures: dict[str, object] = {}
        for name, f in self.figures.items():
            baseline_ratio = self.ratio(name, self.baseline) if self.baseline else None
            figures[name] = {
                **dataclasses.asdict(f),
                "spread_pct": round(f.spread_pct, 1),
                "overhead_us": self.overhead_us(name),
                "ratio_to_baseline": baseline_ratio,
            }
        targets = []
        for t in self.targets:
            value = self.target_value(t)
            met = None if value is None else value <= t.at_most
            targets.append({**dataclasses.asdict(t), "value": value, "met": met})
        return {
            "title": self.title,
            "unit": self.unit,
            "baseline": self.baseline,
            "notes": self.notes,
            "figures": figures,
            "targets": targets,
            "measure": self.measure,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Comparison:
        """Rebuilds a comparison from :meth:`as_dict` output (the runner's JSON)."""
        figures = {
            name: Figure(f["median_us"], f["p25_us"], f["p75_us"], f["rounds"])
            for name, f in data["figures"].items()
        }
        targets = tuple(
            Target(t["label"], t["name"], t["other"], t["at_most"], t.get("measure", "overhead"))
            for t in data.get("targets", ())
        )
        return cls(
            data["title"],
            data["unit"],
            figures,
            data.get("baseline"),
            data.get("notes", ""),
            targets,
            data.get("measure", "us"),
        )


def figure(samples_us: list[float]) -> Figure:
    quartiles = statistics.quantiles(samples_us, n=4) if len(samples_us) > 1 else samples_us * 3
    return Figure(statistics.median(samples_us), quartiles[0], quartiles[2], len(samples_us))


def compare_batches(
    title: str,
    candidates: Mapping[str, Callable[[int], float]],
    *,
    unit: str,
    inner: int,
    rounds: int,
    warmup_rounds: int = 2,
    baseline: str | None = None,
    notes: str = "",
    targets: Sequence[Target] = (),
) -> Comparison:
    """Interleaves self-timing candidates: ``fn(inner)`` runs ``inner`` operations and
    returns the seconds they took, as the candidate measured them."""
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for round_number in range(warmup_rounds + rounds):
        for name, fn in candidates.items():
            elapsed = fn(inner)
            if round_number >= warmup_rounds:
                samples[name].append(elapsed / inner * 1e6)
    return Comparison(
        title, unit, {n: figure(s) for n, s in samples.items()}, baseline, notes, tuple(targets)
    )


def timed(fn: Callable[[], object]) -> Callable[[int], float]:
    """``fn`` as a self-timing candidate: ``n`` calls, GC collected before and off during."""

    def batch(n: int) -> float:
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            for _ in range(n):
                fn()
            return time.perf_counter() - start
        finally:
            gc.enable()

    return batch


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
    targets: Sequence[Target] = (),
) -> Comparison:
    """Times each candidate ``inner`` calls at a time, interleaved over ``rounds`` rounds."""
    return compare_batches(
        title,
        {name: timed(fn) for name, fn in candidates.items()},
        unit=unit,
        inner=inner,
        rounds=rounds,
        warmup_rounds=warmup_rounds,
        baseline=baseline,
        notes=notes,
        targets=targets,
    )
