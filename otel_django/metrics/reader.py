"""A pull MetricReader: metrics are collected when /metrics is scraped, never on a timer."""

from __future__ import annotations

from opentelemetry.sdk.metrics.export import MetricReader, MetricsData


class ScrapeReader(MetricReader):
    """Cumulative pull reader; :meth:`scrape` collects and returns the current data."""

    def __init__(self) -> None:
        super().__init__()
        self._latest: MetricsData | None = None

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000,
                         **kwargs: object) -> None:
        self._latest = metrics_data

    def scrape(self) -> MetricsData | None:
        self._latest = None
        self.collect()
        return self._latest

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        pass
