"""Metric instrumentation that needs Django: caches, connection pools, process, migrations."""

from __future__ import annotations

from opentelemetry import metrics

from .. import __version__
from ..config import Config
from ..instrumentation import when_imported


def instrument(config: Config) -> None:
    """Installs the Django-side metric instruments; startup calls it once per process."""
    if not config.metrics_on:
        return
    from .cache import instrument_caches
    from .migrations import instrument_migrations
    from .pools import instrument_pools, track_sqlalchemy_engines
    from .process import instrument_process

    meter = metrics.get_meter("otel_django", __version__)
    instrument_caches(meter)
    instrument_pools(meter)
    when_imported("sqlalchemy", lambda module: track_sqlalchemy_engines())
    instrument_process(meter)
    instrument_migrations(meter)
