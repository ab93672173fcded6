"""Metric instrumentation that needs Django: caches, connection pools, process, migrations."""

from __future__ import annotations

from ..config import Config


def instrument(config: Config) -> None:
    """Installs the Django-side metric instruments. Idempotent."""
