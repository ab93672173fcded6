"""Scrape -> snapshot -> (merge with the other workers) -> exposition bytes."""

from __future__ import annotations

import logging
from pathlib import Path

from .aggregate import Aggregate, HistogramSpec
from .exposition import ALL, Renderer, Snapshot, Snapshotter, merge_into
from .multiprocess import Exchange
from .reader import ScrapeReader

logger = logging.getLogger("otel_django.metrics")


class Pipeline:
    def __init__(
        self, reader: ScrapeReader, limit: int, exemplar_filter: str = "trace_based"
    ) -> None:
        self.reader = reader
        self.limit = limit
        self.exemplar_filter = exemplar_filter
        self.exchange: Exchange | None = None
        self._snapshotter = Snapshotter()
        self._renderer = Renderer()
        self._aggregates: dict[str, Aggregate] = {}
        reader.on_shutdown(self.close)

    def histogram(self, spec: HistogramSpec) -> Aggregate:
        """This process's aggregate for ``spec``; one per metric name, shared by its users."""
        aggregate = self._aggregates.get(spec.name)
        if aggregate is None:
            aggregate = self._aggregates.setdefault(
                spec.name, Aggregate(spec, self.limit, self.exemplar_filter)
            )
        if aggregate.spec != spec:
            raise ValueError(f"histogram {spec.name} is defined twice, differently")
        return aggregate

    def aggregates(self) -> list[Aggregate]:
        """The in-place histograms of this process (for OTLP push)."""
        return list(self._aggregates.values())

    def start_exchange(self, directory: Path) -> None:
        exchange = Exchange(directory, self.local_snapshot, self.limit)
        exchange.start()
        self.exchange = exchange

    def local_snapshot(self) -> Snapshot:
        snapshot = self._snapshotter.take(self.reader.scrape())
        aggregated = {a.family_name: a.family() for a in list(self._aggregates.values())}
        merge_into(snapshot.families, aggregated, (ALL,), self.limit)
        return snapshot

    def snapshot(self) -> Snapshot:
        """This process's metrics, or the whole server's when workers exchange them."""
        local = self.local_snapshot()
        return self.exchange.gather(local) if self.exchange is not None else local

    def exposition(self, openmetrics: bool = False) -> bytes:
        return self._renderer.render(self.snapshot(), openmetrics)

    def close(self) -> None:
        if self.exchange is not None:
            self.exchange.close()
