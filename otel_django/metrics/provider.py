"""Builds the MeterProvider from the configuration."""

from __future__ import annotations

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource

from ..config import Config
from .reader import ScrapeReader

_reader: ScrapeReader | None = None


def build_meter_provider(config: Config, resource: Resource) -> MeterProvider:
    global _reader
    _reader = ScrapeReader()
    return MeterProvider(resource=resource, metric_readers=[_reader])


def scrape_reader() -> ScrapeReader | None:
    """The reader of this process's MeterProvider, if otel_django built it."""
    return _reader
