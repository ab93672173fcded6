"""Scrape -> snapshot -> (merge with the other workers) -> exposition bytes."""

from __future__ import annotations

import logging
from pathlib import Path

from .exposition import Renderer, Snapshot, Snapshotter
from .multiprocess import Exchange
from .reader import ScrapeReader

logger = logging.getLogger("otel_django.metrics")


class Pipeline:
    def __init__(self, reader: ScrapeReader, limit: int) -> None:
        self.reader = reader
        self.limit = limit
        self.exchange: Exchange | None = None
        self._snapshotter = Snapshotter()
        self._renderer = Renderer()
        reader.on_shutdown(self.close)

    def start_exchange(self, directory: Path) -> None:
        exchange = Exchange(directory, self.local_snapshot, self.limit)
        exchange.start()
        self.exchange = exchange

    def local_snapshot(self) -> Snapshot:
        return self._snapshotter.take(self.reader.scrape())

    def snapshot(self) -> Snapshot:
        """This process's metrics, or the whole server's when workers exchange them."""
        local = self.local_snapshot()
        return self.exchange.gather(local) if self.exchange is not None else local

    def exposition(self, openmetrics: bool = False) -> bytes:
        return self._renderer.render(self.snapshot(), openmetrics)

    def close(self) -> None:
        if self.exchange is not None:
            self.exchange.close()
