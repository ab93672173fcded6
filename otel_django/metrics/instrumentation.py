"""Metric instrumentation that needs Django: caches, connection pools, process, migrations."""

from __future__ import annotations

import threading

from opentelemetry import metrics

from .. import __version__
from ..config import Config
from ..instrumentation import when_imported

_lock = threading.Lock()
_done = False


def instrument(config: Config) -> None:
    """Installs the Django-side metric instruments. Idempotent."""
    global _done
    with _lock:
        if _done or not config.metrics_on:
            return
        _done = True
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
