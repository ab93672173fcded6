"""The process's one runtime object, and the one accessor for code that cannot be handed it.

:class:`Runtime` holds everything otel_django keeps for the life of a process: the validated
:class:`~otel_django.config.Config` (loaded once), the startup state, the metrics pipeline,
the redactor, query insight and the readiness checks' state. Startup builds it
(:func:`build_runtime`) and hands each component what it needs when it builds it, as upstream
instrumentors take ``tracer_provider=``.

Code that Django or the application constructs (the middleware, the views, the system checks,
``register_check``) reaches it with :func:`current`. When setup has not run (a system check
before ``ready()``, a view imported by a test), :func:`current` builds it from the
environment and Django settings with the same :func:`build_runtime` startup uses, so there is
only ever one configuration per process. Tests install another with :func:`reset`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .config import Config, ConfigError, disabled_config, load_config
from .db.errors import ErrorMessages
from .redaction import Redactor

if TYPE_CHECKING:
    from opentelemetry.sdk._logs import LoggerProvider

    from .db.django import QueryObserver
    from .db.insight import Insight
    from .db.sqlalchemy import _Hooks as SqlAlchemyHooks
    from .health.checks import HealthState
    from .logging.setup import LoggingPipeline
    from .metrics.http import ActiveRequests
    from .metrics.pipeline import Pipeline

__all__ = [
    "Lifecycle",
    "Runtime",
    "build_runtime",
    "current",
    "django_settings_dict",
    "for_tests",
    "quiet_in_tests",
    "reset",
    "under_test_runner",
]


def _active_requests() -> ActiveRequests:
    from .metrics.http import ActiveRequests

    return ActiveRequests()


@dataclasses.dataclass(eq=False)
class Lifecycle:
    """Process state shared by every copy of a :class:`Runtime`: where startup is, what it
    installed, what is counted and reported once per process."""

    lock: threading.RLock = dataclasses.field(default_factory=threading.RLock)
    django_ready: bool = False
    providers_ready: bool = False
    # A pre-fork master: the providers wait for the worker's fork.
    deferred: bool = False
    fork_hook_registered: bool = False
    shut_down: bool = False
    # Components installed once per process ("sqlalchemy", "celery", "metrics" ...).
    installed: set[str] = dataclasses.field(default_factory=set)
    # The middleware's failures (per stage, per hook) already logged with their traceback.
    reported: set[str] = dataclasses.field(default_factory=set)
    # In-flight requests, shared by every middleware instance (http.server.active_requests).
    active_requests: ActiveRequests = dataclasses.field(default_factory=_active_requests)


@dataclasses.dataclass(eq=False)
class Runtime:
    """Process state of otel_django. Parts derived from the configuration are built on
    first use, once per runtime."""

    config: Config
    # Why ``config`` is the one with telemetry off (reported by startup and otel_django.E001).
    error: ConfigError | None = None
    lifecycle: Lifecycle = dataclasses.field(default_factory=Lifecycle)
    # This process's metrics pipeline, once otel_django has built its MeterProvider (in a
    # pre-fork server: in the worker, after the fork). Instruments read it here.
    pipeline: Pipeline | None = None
    # The query observer on every Django connection, once setup has installed it.
    observer: QueryObserver | None = None
    # The listeners on every SQLAlchemy engine, once SQLAlchemy was imported.
    sqlalchemy_hooks: SqlAlchemyHooks | None = None
    # What configure_logging set up, and the log provider created for it (log export).
    logging: LoggingPipeline | None = None
    log_provider: LoggerProvider | None = None

    @functools.cached_property
    def redactor(self) -> Redactor:
        """The one redactor of ``REDACT_KEYS``: logs, spans, query parameters, Sentry."""
        return Redactor(self.config.logging.redact_keys)

    @functools.cached_property
    def error_messages(self) -> ErrorMessages:
        return ErrorMessages.from_config(self.config)

    @functools.cached_property
    def insight(self) -> Insight:
        """Query insight: its thresholds, counters and EXPLAIN limiter."""
        from opentelemetry import metrics

        from . import __version__
        from .db.insight import Insight

        meter = metrics.get_meter("otel_django.db", __version__) if self.config.metrics_on else None
        return Insight(self.config.db, meter)

    @functools.cached_property
    def health(self) -> HealthState:
        """Registered readiness checks, the checks' thread pool, migrations seen applied."""
        from .health.checks import HealthState

        return HealthState()


def under_test_runner() -> bool:
    """Django's test runner (``manage.py test``) or pytest is running this process."""
    return sys.argv[1:2] == ["test"] or "pytest" in sys.modules


def quiet_in_tests(config: Config) -> bool:
    return under_test_runner() and not config.telemetry_in_tests


def for_tests(config: Config) -> Config:
    """What a test run of the user's project gets: spans and metrics in process only,
    nothing exported (no Sentry events either), no access lines, logging left as the project
    configures it."""
    return config.replace(
        TRACES_EXPORTER=(),
        LOGS_EXPORTER=(),
        SENTRY_DSN=None,
        METRICS_EXPORTER=tuple(name for name in config.metrics.exporter if name == "prometheus"),
        ACCESS_LOG=False,
        LOGGING_ENABLED=False,
    )


def django_settings_dict() -> Mapping[str, Any]:
    """The ``OTEL_DJANGO`` dict of Django settings; reads settings, so call it only after setup."""
    from django.conf import settings

    value = getattr(settings, "OTEL_DJANGO", None)
    return {} if value is None else value


def build_runtime(
    environ: Mapping[str, str] | None = None, settings_dict: Mapping[str, Any] | None = None
) -> Runtime:
    """The runtime of this process's configuration. An invalid configuration gives the one
    with telemetry off and the error; a test run gets :func:`for_tests`'s."""
    environ = os.environ if environ is None else environ
    settings_dict = django_settings_dict() if settings_dict is None else settings_dict
    try:
        config = load_config(environ, settings_dict)
    except ConfigError as exc:
        return Runtime(disabled_config(environ), error=exc)
    return Runtime(for_tests(config) if quiet_in_tests(config) else config)


_lock = threading.Lock()
_current: Runtime | None = None


def _install(runtime: Runtime | None, replace: bool) -> Runtime | None:
    global _current
    with _lock:
        previous = _current
        if replace or previous is None:
            _current = runtime if replace else build_runtime()
        return previous if replace else _current


def current() -> Runtime:
    """The runtime of this process, built on first use if setup has not run yet."""
    runtime = _current
    if runtime is None:
        runtime = _install(None, replace=False)
        assert runtime is not None
    return runtime


def reset(runtime: Runtime | None = None) -> Runtime | None:
    """For tests: makes ``runtime`` the process's (``None``: the next :func:`current` builds one
    from the environment and settings again) and returns the one it replaces, to put back.

    ``dataclasses.replace(current(), config=...)`` is the process's runtime under another
    configuration: the same lifecycle, pipeline and observer; the parts built from the
    configuration (redactor, insight, readiness state) built anew from it.
    """
    return _install(runtime, replace=True)
