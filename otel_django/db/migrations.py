"""How many migrations on disk a database has not applied: the one count behind the
``otel_django.db.migrations.unapplied`` gauge and the readiness probe's migrations check."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

__all__ = ["unapplied_count"]


def unapplied_count(connection: BaseDatabaseWrapper) -> int:
    """The number of migrations ``migrate`` would apply on ``connection``."""
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    return len(executor.migration_plan(executor.loader.graph.leaf_nodes()))
