"""Running a test under another configuration: the one place that knows how a Config takes
effect in a running process.

``override_config`` (the fixture in ``tests/conftest.py``) goes through :func:`apply_config`
and :func:`forget_remembered_state` only, so a change in how startup hands the configuration
to its components is adapted here and nowhere else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from otel_django import runtime
from otel_django.config import Config
from otel_django.db import insight
from otel_django.health import checks as health_checks
from otel_django.logging.setup import configure_logging

__all__ = ["apply_config", "forget_remembered_state", "overridden_config"]

# What configure_logging reads. The pipeline is rebuilt only when one of them changes: a
# rebuild would also replace structlog's processors installed by structlog.testing.capture_logs.
_LOGGING_FIELDS = (
    "logging_enabled",
    "log_level",
    "log_format",
    "log_processors",
    "logs_exporter",
    "redact_keys",
    "record_database_error_messages",
    "service_name",
    "access_log",
)


def _logging_inputs(config: Config) -> tuple[object, ...]:
    return tuple(getattr(config, name) for name in _LOGGING_FIELDS)


def apply_config(config: Config, previous: Config) -> None:
    """Makes ``config`` the one in effect, where ``previous`` was: for the views, middleware
    and hooks (the runtime's), for the log pipeline and for the live query insight."""
    runtime.set_config(config)
    if _logging_inputs(config) != _logging_inputs(previous):
        configure_logging(config)
    live = insight.get_insight()
    if live is not None:
        live.apply(config)


def forget_remembered_state() -> None:
    """What earlier requests left behind: EXPLAIN's rate limiter, databases seen migrated."""
    live = insight.get_insight()
    if live is not None:
        live.limiter.clear()
    health_checks.forget_migration_state()


@contextmanager
def overridden_config() -> Iterator[Callable[..., Config]]:
    """Yields ``override(slow_query_ms=0, ...)``: the configuration in effect when entered,
    with these ``Config`` fields changed, applied; each call starts again from that
    configuration. On exit it is restored."""
    original = runtime.get_config()
    current = original
    forget_remembered_state()

    def override(**changes: Any) -> Config:
        nonlocal current
        config = dataclasses.replace(original, **changes)
        apply_config(config, current)
        current = config
        return config

    try:
        yield override
    finally:
        apply_config(original, current)
        forget_remembered_state()
