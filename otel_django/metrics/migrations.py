"""``otel_django.db.migrations.unapplied``: migrations on disk not applied, per database.

Computed when metrics are collected, never at startup, in a daemon thread with a time budget:
a database that is down or hangs leaves its series out of that scrape (it does not fail the
scrape, and no bogus value such as -1 is reported: alert on ``absent()`` if you need to).
When one worker collects for another's scrape the computation is skipped: the scraping
worker's value is the server's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from ..db.migrations import unapplied_count
from .multiprocess import answering_peer

logger = logging.getLogger("otel_django.metrics")

TIMEOUT_S = 2.0


def unapplied_migrations() -> dict[str, int]:
    """Per database alias, the number of migrations ``migrate`` would apply; skips failures."""
    from django.db import connections
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    counts: dict[str, int] = {}
    # The scrape's own queries are not the application's: no spans, no metrics.
    with suppress_instrumentation():
        for alias in connections:
            connection = connections[alias]
            try:
                connection.ensure_connection()
                counts[alias] = unapplied_count(connection)
            except Exception as exc:
                logger.debug("unapplied migrations of %r not known: %s", alias, exc)
            finally:
                connection.close()
    return counts


class UnappliedMigrations:
    """The gauge's callback: ``count`` (default :func:`unapplied_migrations`) run in a daemon
    thread, at most one at a time, waited for ``timeout_s``."""

    def __init__(
        self,
        count: Callable[[], dict[str, int]] = unapplied_migrations,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        self._count = count
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._running: threading.Thread | None = None

    def observe(self, options: CallbackOptions) -> Iterable[Observation]:
        if answering_peer():
            return []
        result: dict[str, int] = {}

        def run() -> None:
            result.update(self._count())

        with self._lock:
            if self._running is not None and self._running.is_alive():
                logger.warning("unapplied migrations: the previous check still runs; skipped")
                return []
            thread = threading.Thread(target=run, name="otel_django-migrations", daemon=True)
            try:
                thread.start()
            except RuntimeError:
                # "can't create new thread at interpreter shutdown": a worker's final snapshot,
                # taken from atexit (gunicorn without the shipped hooks). Gauges leave with it.
                return []
            self._running = thread
        thread.join(self._timeout_s)
        if thread.is_alive():
            logger.warning(
                "unapplied migrations: no answer within %.1fs; left out", self._timeout_s
            )
            return []
        return [
            Observation(count, {"otel_django.db.alias": alias}) for alias, count in result.items()
        ]


def instrument_migrations(meter: Meter, gauge: UnappliedMigrations | None = None) -> None:
    gauge = gauge or UnappliedMigrations()
    meter.create_observable_gauge(
        "otel_django.db.migrations.unapplied", callbacks=[gauge.observe], unit="{migration}",
        description="Migrations known to the code and not applied, per database alias.",
    )  # fmt: skip
