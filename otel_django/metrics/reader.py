"""A pull MetricReader: metrics are collected when /metrics is scraped, never on a timer."""

from __future__ import annotations

import threading
from collections.abc import Callable

from opentelemetry.sdk.metrics.export import MetricReader, MetricsData

from . import cardinality


class ScrapeReader(MetricReader):
    """Cumulative pull reader; :meth:`scrape` collects and returns the current data.

    ``cardinality_limit``: series kept per metric, overflow included (``cardinality.py``)."""

    def __init__(self, cardinality_limit: int | None = None) -> None:
        options = {} if cardinality_limit is None else cardinality.reader_options(cardinality_limit)
        super().__init__(**options)
        self._latest: MetricsData | None = None
        self._lock = threading.Lock()
        self._on_shutdown: list[Callable[[], None]] = []

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: object
    ) -> None:
        self._latest = metrics_data

    def scrape(self) -> MetricsData | None:
        with self._lock:
            self._latest = None
            self.collect()
            latest, self._latest = self._latest, None
            return latest

    def on_shutdown(self, callback: Callable[[], None]) -> None:
        """Runs ``callback`` when the MeterProvider shuts down (worker exit, atexit)."""
        self._on_shutdown.append(callback)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        callbacks, self._on_shutdown = self._on_shutdown, []
        for callback in callbacks:
            callback()
