"""Startup: settings -> configuration -> providers -> instrumentations, once per process.

Two ways in reach the same state:

* ``"otel_django"`` in ``INSTALLED_APPS``: ``ready()`` calls :func:`setup_django`, which also
  applies the installed instrumentors (``instrumentation.py``).
* ``opentelemetry-instrument``: the distro's configurator installs :func:`hook_django_setup`,
  which runs :func:`setup_django` right after ``django.setup()`` has populated the app
  registry, when settings can be read; the wrapper applies the instrumentors through the
  distro.

What setup never does: crash the application. An invalid ``OTEL_DJANGO`` value is one error
line and a process without telemetry (``manage.py check`` reports it as otel_django.E001);
``OTEL_SDK_DISABLED=true`` is a process without telemetry too; under a test runner nothing is
exported, no access line written and logging left alone unless ``TELEMETRY_IN_TESTS`` is on.

In the master of a pre-fork server (gunicorn ``--preload``, uWSGI without ``--lazy-apps``;
:mod:`otel_django.servers` tells) providers are not created: each worker creates its own right
after the fork, so every worker has its own exporter threads and its own
``service.instance.id``. Instrumentations installed in the master use the API's proxy
tracers and meters, which resolve to the worker's providers. A process that waits for a fork
and serves a request instead creates them then.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from . import servers
from .config import Config, ConfigError, disabled_config, load_config
from .export import Notes
from .resource import build_resource
from .runtime import django_settings_dict, set_config

if TYPE_CHECKING:
    from opentelemetry.sdk._logs import LoggerProvider

    from .logging.setup import LoggingPipeline

logger = logging.getLogger("otel_django")

MIDDLEWARE_PATH = "otel_django.middleware.OtelDjangoMiddleware"

# Set only where the user set nothing; upstream instrumentations and exporters read them.
# otel_django's own settings (exporters, sampler ...) have their defaults in config.py, so
# that the OTEL_DJANGO settings dict can still set them.
ENVIRONMENT_DEFAULTS = {
    "OTEL_SEMCONV_STABILITY_OPT_IN": "http,database",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",  # the spec's default (the SDK's is grpc)
}

_lock = threading.RLock()
_providers_ready = False
_deferred: Config | None = None
_fork_hook_registered = False
_django_ready = False
_shut_down = False
under_wrapper = False
# What configure_logging set up, and the log provider created for it (log export).
_logging: LoggingPipeline | None = None
_log_provider: LoggerProvider | None = None


def apply_environment_defaults() -> None:
    for name, value in ENVIRONMENT_DEFAULTS.items():
        os.environ.setdefault(name, value)


def _in_prefork_master(config: Config) -> bool:
    return servers.in_prefork_master(config.prefork)


def setup_providers(config: Config) -> None:
    """Creates and registers the tracer and meter providers, unless that is done already."""
    global _deferred, _fork_hook_registered
    with _lock:
        if _providers_ready or _deferred is not None:
            return
        servers.call_at_worker_exit(shutdown)
        problem = servers.misconfiguration()
        if problem is not None:
            logger.warning(problem)
        if _in_prefork_master(config):
            _deferred = config
            if not _fork_hook_registered:
                servers.call_after_fork(_after_fork_in_child)
                from django.core.signals import request_started

                request_started.connect(_serving_while_deferred, dispatch_uid=_DEFERRED_UID)
                _fork_hook_registered = True
            logger.debug("pre-fork master: providers will be created in each worker")
            return
        _create_providers(config)


def _after_fork_in_child() -> None:
    global _deferred
    with _lock:
        config, _deferred = _deferred, None
        if config is not None and not _providers_ready:
            _create_providers(config)


_DEFERRED_UID = "otel_django.startup.deferred"


def _serving_while_deferred(**kwargs: object) -> None:
    """A request in a process still waiting for its fork: no fork came (``PREFORK=true``
    under a server that does not fork, say). Telemetry is set up here rather than never."""
    from django.core.signals import request_started

    with _lock:  # concurrent first requests wait until the providers exist
        if _deferred is not None:
            logger.warning(
                "this process serves requests but was never forked (OTEL_DJANGO_PREFORK=%s): "
                "telemetry is set up in it now",
                _deferred.prefork,
            )
            _after_fork_in_child()
    request_started.disconnect(dispatch_uid=_DEFERRED_UID)


def after_fork() -> None:
    """Creates this worker's providers if the fork hook has not (gunicorn ``post_fork``)."""
    _after_fork_in_child()


def _create_providers(config: Config) -> None:
    global _providers_ready
    _providers_ready = True
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        logger.info("an SDK TracerProvider is already set up; otel_django uses it as it is")
        return
    notes = Notes()
    resource = build_resource(config)
    from .traces.provider import build_tracer_provider

    trace.set_tracer_provider(build_tracer_provider(config, resource, notes))
    if config.metrics_on and not isinstance(metrics.get_meter_provider(), MeterProvider):
        from .metrics.provider import build_meter_provider

        metrics.set_meter_provider(build_meter_provider(config, resource, notes))
    if config.logs_exported:
        from .logging.otlp import setup_log_export

        _start_log_export(setup_log_export(config, resource, notes))
    _flush_on_sigterm()


def _start_log_export(provider: LoggerProvider | None) -> None:
    global _log_provider
    _log_provider = provider
    if provider is not None and _logging is not None and _logging.log_export is not None:
        _logging.log_export.start(provider)


def _configure_logging(config: Config) -> None:
    global _logging
    from .logging.setup import configure_logging

    _logging = configure_logging(config)
    if _log_provider is not None and _logging is not None and _logging.log_export is not None:
        _logging.log_export.start(_log_provider)


def _flush_on_sigterm() -> None:
    """Flushes pending telemetry on SIGTERM where nobody else handles the signal.

    A server that handles SIGTERM itself (gunicorn, uvicorn) keeps its handler; with the
    default action the process would die without running ``atexit`` and lose queued spans.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def on_sigterm(signum: int, frame: object) -> None:
        try:
            shutdown()
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)


def shutdown() -> None:
    """Flushes and stops the providers (gunicorn ``worker_exit``, SIGTERM, a server's exit:
    :func:`otel_django.servers.call_at_worker_exit`). Only the first call does anything."""
    global _shut_down
    with _lock:
        if _shut_down:
            return
        _shut_down = True
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.force_flush()
        provider.shutdown()
    meter_provider = metrics.get_meter_provider()
    if isinstance(meter_provider, MeterProvider):
        meter_provider.shutdown()
    if _logging is not None and _logging.log_export is not None:
        _logging.log_export.stop()  # lines keep going to stdout, no longer exported
    if _log_provider is not None:
        _log_provider.shutdown()


def install_middleware() -> None:
    from django.conf import settings

    current = list(settings.MIDDLEWARE)
    if MIDDLEWARE_PATH not in current:
        settings.MIDDLEWARE = [MIDDLEWARE_PATH, *current]


def under_test_runner() -> bool:
    """Django's test runner (``manage.py test``) or pytest is running this process."""
    return sys.argv[1:2] == ["test"] or "pytest" in sys.modules


def quiet_in_tests(config: Config) -> bool:
    return under_test_runner() and not config.telemetry_in_tests


def for_tests(config: Config) -> Config:
    """What a test run of the user's project gets: spans and metrics in process only,
    nothing exported (no Sentry events either), no access lines, logging left as the project
    configures it."""
    return dataclasses.replace(
        config,
        traces_exporter=(),
        logs_exporter=(),
        sentry_dsn=None,
        metrics_exporter=tuple(name for name in config.metrics_exporter if name == "prometheus"),
        access_log=False,
        logging_enabled=False,
    )


def setup_django() -> Config:
    """Everything that needs Django: runs once, from ``ready()`` or the wrapper's hook."""
    global _django_ready
    with _lock:
        if _django_ready:
            from .runtime import get_config

            # django.setup() ran again (runserver imports wsgi.py, which calls it) and
            # re-applied settings.LOGGING over the pipeline: take it over again.
            config = get_config()
            _configure_logging(config)
            return config
        _django_ready = True
        apply_environment_defaults()
        try:
            config = load_config(os.environ, django_settings_dict())
        except ConfigError as exc:
            logger.error(
                "otel_django: %s. Running without telemetry; `manage.py check` reports it "
                "as otel_django.E001.",
                exc,
            )
            config = disabled_config()
            set_config(config)
            return config
        if quiet_in_tests(config):
            config = for_tests(config)
        set_config(config)
        try:
            _configure_logging(config)
        except ConfigError as exc:
            logger.error("otel_django: %s. Logging is left as it is.", exc)
        for warning in config.warnings:
            logger.warning("otel_django: %s", warning)
        if config.sdk_disabled:
            hook_django_setup()
            return config
        setup_providers(config)
        install_middleware()
        _instrument(config)
        hook_django_setup()
        return config


def _instrument(config: Config) -> None:
    """ORM spans now; SQLAlchemy, Celery and the installed instrumentors when the
    application imports their library (nothing optional is imported before)."""
    from . import instrumentation
    from .db.django import instrument_django_db

    if not under_wrapper:
        instrumentation.apply_installed(os.environ)
    observer = instrument_django_db(config)

    def sqlalchemy_imported(module: object) -> None:
        from .db.sqlalchemy import instrument as instrument_sqlalchemy

        instrument_sqlalchemy(config, observer.duration_histogram)

    def celery_imported(module: object) -> None:
        from .celery import instrument_celery

        instrument_celery(config)

    instrumentation.when_imported("sqlalchemy", sqlalchemy_imported)
    instrumentation.when_imported("celery", celery_imported)
    if config.metrics_on:
        from .metrics.instrumentation import instrument as instrument_metrics

        instrument_metrics(config)
    if config.sentry_dsn:
        from .sentry import setup_sentry

        try:
            setup_sentry(config)
        except ConfigError as exc:
            logger.error("otel_django: %s. Errors are not sent to Sentry.", exc)


def hook_django_setup() -> None:
    """Runs :func:`setup_django` each time ``django.setup()`` has populated the app registry.

    Under ``opentelemetry-instrument`` that is how setup happens at all; afterwards it keeps
    the logging pipeline in place when ``django.setup()`` runs again.
    """
    from django.apps import registry

    original = registry.Apps.populate
    if getattr(original, "_otel_django_hook", False):
        return

    def populate(self: registry.Apps, installed_apps: Any = None) -> None:
        original(self, installed_apps)
        if self is registry.apps and self.ready:
            setup_django()

    populate._otel_django_hook = True  # type: ignore[attr-defined]
    registry.Apps.populate = populate  # type: ignore[method-assign]
