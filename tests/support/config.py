"""Running a test under another configuration: the one place that knows how a Config takes
effect in a running process.

``override_config`` (the fixture in ``tests/conftest.py``) goes through :func:`apply_config`
and :func:`forget_remembered_state` only, so a change in how startup hands the configuration
to its components is adapted here and nowhere else.

A configuration takes effect as a copy of the process's runtime with it
(``dataclasses.replace(runtime.current(), config=...)``, installed with ``runtime.reset``):
what Django constructs from then on (middleware, views, checks) reads it. The components
startup built keep the process's query insight: the copy shares it, and it gets the
configuration's thresholds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from otel_django import runtime
from otel_django.config import Config
from otel_django.db.insight import Insight
from otel_django.logging.setup import configure_logging

__all__ = ["apply_config", "forget_remembered_state", "overridden_config"]

# The query insight's settings, as Insight takes them from config.db.
_THRESHOLDS = (
    "slow_s",
    "n_plus_one_threshold",
    "explain_enabled",
    "explain_interval_s",
    "explain_timeout_ms",
)


def _logging_inputs(config: Config) -> tuple[object, ...]:
    """What configure_logging reads. The pipeline is rebuilt only when one of them changes: a
    rebuild would also replace structlog's processors installed by structlog.testing.capture_logs.
    """
    return (
        config.logging,
        config.db.record_database_error_messages,
        config.service,
        config.logs_exported,
    )


def apply_config(config: Config, previous: Config, live: runtime.Runtime) -> None:
    """Makes ``config`` the one in effect, where ``previous`` was: for the views, middleware
    and hooks (a copy of ``live``, the process's runtime), for the log pipeline and for the
    live query insight."""
    current = live if config is live.config else dataclasses.replace(live, config=config)
    current.insight = live.insight  # the one the observers report to
    current.health = live.health
    runtime.reset(current)
    if _logging_inputs(config) != _logging_inputs(previous):
        configure_logging(config, redactor=current.redactor)
    tuned = Insight(config.db)
    for name in _THRESHOLDS:
        setattr(live.insight, name, getattr(tuned, name))


def forget_remembered_state(live: runtime.Runtime) -> None:
    """What earlier requests left behind: EXPLAIN's rate limiter, databases seen migrated."""
    live.insight.limiter = Insight(live.config.db).limiter
    live.health.migrations_applied.clear()


@contextmanager
def overridden_config() -> Iterator[Callable[..., Config]]:
    """Yields ``override(slow_query_ms=0, ...)``: the configuration in effect when entered,
    with these settings changed, applied; each call starts again from that configuration. On
    exit it is restored."""
    live = runtime.current()
    original = live.config
    current = original
    forget_remembered_state(live)

    def override(**changes: Any) -> Config:
        nonlocal current
        config = original.replace(**changes)
        apply_config(config, current, live)
        current = config
        return config

    try:
        yield override
    finally:
        apply_config(original, current, live)
        forget_remembered_state(live)
