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

All of it acts on the process's :class:`~otel_django.runtime.Runtime`: setup loads the
configuration into it once, records where startup is (``Runtime.lifecycle``) and hands each
component what it needs from it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from . import runtime as runtime_module
from . import servers
from .export import Notes
from .resource import build_resource
from .runtime import Runtime

if TYPE_CHECKING:
    from opentelemetry.sdk._logs import LoggerProvider

logger = logging.getLogger("otel_django")

MIDDLEWARE_PATH = "otel_django.middleware.OtelDjangoMiddleware"

# Set only where the user set nothing; upstream instrumentations and exporters read them.
# otel_django's own settings (exporters, sampler ...) have their defaults in config.py, so
# that the OTEL_DJANGO settings dict can still set them.
ENVIRONMENT_DEFAULTS = {
    "OTEL_SEMCONV_STABILITY_OPT_IN": "http,database",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",  # the spec's default (the SDK's is grpc)
}
_DEFERRED_UID = "otel_django.startup.deferred"


def apply_environment_defaults() -> None:
    for name, value in ENVIRONMENT_DEFAULTS.items():
        os.environ.setdefault(name, value)


def setup_providers(runtime: Runtime) -> None:
    """Creates and registers the tracer and meter providers, unless that is done already."""
    state = runtime.lifecycle
    with state.lock:
        if state.providers_ready or state.deferred:
            return
        servers.call_at_worker_exit(lambda: shutdown(runtime))
        problem = servers.misconfiguration()
        if problem is not None:
            logger.warning(problem)
        if servers.in_prefork_master(runtime.config.prefork):
            state.deferred = True
            if not state.fork_hook_registered:
                servers.call_after_fork(lambda: after_fork(runtime))
                from django.core.signals import request_started

                def serving_while_deferred(**kwargs: object) -> None:
                    _serving_while_deferred(runtime)

                request_started.connect(
                    serving_while_deferred, weak=False, dispatch_uid=_DEFERRED_UID
                )
                state.fork_hook_registered = True
            logger.debug("pre-fork master: providers will be created in each worker")
            return
        _create_providers(runtime)


def after_fork(runtime: Runtime | None = None) -> None:
    """Creates this worker's providers if the fork hook has not (gunicorn ``post_fork``)."""
    runtime = runtime or runtime_module.current()
    state = runtime.lifecycle
    with state.lock:
        deferred, state.deferred = state.deferred, False
        if deferred and not state.providers_ready:
            _create_providers(runtime)


def _serving_while_deferred(runtime: Runtime) -> None:
    """A request in a process still waiting for its fork: no fork came (``PREFORK=true``
    under a server that does not fork, say). Telemetry is set up here rather than never."""
    from django.core.signals import request_started

    with runtime.lifecycle.lock:  # concurrent first requests wait until the providers exist
        if runtime.lifecycle.deferred:
            logger.warning(
                "this process serves requests but was never forked (OTEL_DJANGO_PREFORK=%s): "
                "telemetry is set up in it now",
                runtime.config.prefork,
            )
            after_fork(runtime)
    request_started.disconnect(dispatch_uid=_DEFERRED_UID)


def _create_providers(runtime: Runtime) -> None:
    runtime.lifecycle.providers_ready = True
    config = runtime.config
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        logger.info("an SDK TracerProvider is already set up; otel_django uses it as it is")
        return
    notes = Notes()
    resource = build_resource(config)
    from .traces.provider import build_tracer_provider

    trace.set_tracer_provider(build_tracer_provider(config, resource, notes))
    if config.metrics_on and not isinstance(metrics.get_meter_provider(), MeterProvider):
        from .metrics.provider import build_meter_provider

        meter_provider, runtime.pipeline = build_meter_provider(config, resource, notes)
        metrics.set_meter_provider(meter_provider)
    if config.logs_exported:
        from .logging.otlp import setup_log_export

        _start_log_export(runtime, setup_log_export(config, resource, notes))
    _flush_on_sigterm(runtime)


def _start_log_export(runtime: Runtime, provider: LoggerProvider | None) -> None:
    runtime.log_provider = provider
    pipeline = runtime.logging
    if provider is not None and pipeline is not None and pipeline.log_export is not None:
        pipeline.log_export.start(provider)


def _configure_logging(runtime: Runtime) -> None:
    from .logging.setup import configure_logging

    pipeline = runtime.logging = configure_logging(runtime.config, redactor=runtime.redactor)
    provider = runtime.log_provider
    if provider is not None and pipeline is not None and pipeline.log_export is not None:
        pipeline.log_export.start(provider)


def _flush_on_sigterm(runtime: Runtime) -> None:
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
            shutdown(runtime)
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)


def shutdown(runtime: Runtime | None = None) -> None:
    """Flushes and stops the providers (gunicorn ``worker_exit``, SIGTERM, a server's exit:
    :func:`otel_django.servers.call_at_worker_exit`). Only the first call does anything."""
    runtime = runtime or runtime_module.current()
    state = runtime.lifecycle
    with state.lock:
        if state.shut_down:
            return
        state.shut_down = True
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.force_flush()
        provider.shutdown()
    meter_provider = metrics.get_meter_provider()
    if isinstance(meter_provider, MeterProvider):
        meter_provider.shutdown()
    if runtime.logging is not None and runtime.logging.log_export is not None:
        runtime.logging.log_export.stop()  # lines keep going to stdout, no longer exported
    if runtime.log_provider is not None:
        runtime.log_provider.shutdown()


def install_middleware() -> None:
    from django.conf import settings

    current = list(settings.MIDDLEWARE)
    if MIDDLEWARE_PATH not in current:
        settings.MIDDLEWARE = [MIDDLEWARE_PATH, *current]


def setup_django(under_wrapper: bool | None = None) -> Runtime:
    """Everything that needs Django: runs once, from ``ready()`` or the wrapper's hook.

    ``under_wrapper``: whether ``opentelemetry-instrument`` applies the instrumentors (it
    does when its configurator installed the setup hook); otherwise setup applies them.
    """
    if under_wrapper is None:
        under_wrapper = hooked_by_wrapper()
    apply_environment_defaults()
    runtime = runtime_module.current()
    config = runtime.config
    with runtime.lifecycle.lock:
        if runtime.lifecycle.django_ready:
            # django.setup() ran again (runserver imports wsgi.py, which calls it) and
            # re-applied settings.LOGGING over the pipeline: take it over again.
            _configure_logging(runtime)
            return runtime
        runtime.lifecycle.django_ready = True
        if runtime.error is not None:
            logger.error(
                "otel_django: %s. Running without telemetry; `manage.py check` reports it "
                "as otel_django.E001.",
                runtime.error,
            )
            return runtime
        _configure_logging(runtime)
        for warning in config.warnings:
            logger.warning("otel_django: %s", warning)
        if config.sdk_disabled:
            hook_django_setup(under_wrapper)
            return runtime
        setup_providers(runtime)
        install_middleware()
        _instrument(runtime, under_wrapper)
        hook_django_setup(under_wrapper)
        return runtime


def _instrument(runtime: Runtime, under_wrapper: bool) -> None:
    """ORM spans now; SQLAlchemy, Celery and the installed instrumentors when the
    application imports their library (nothing optional is imported before)."""
    from . import instrumentation
    from .db.django import instrument_django_db

    config = runtime.config
    if not under_wrapper:
        instrumentation.apply_installed(config.disabled_instrumentations)
    observer = runtime.observer = instrument_django_db(
        config, runtime.insight, runtime.redactor, pipeline_source=runtime
    )

    def sqlalchemy_imported(module: object) -> None:
        from .db.sqlalchemy import instrument as instrument_sqlalchemy

        if "sqlalchemy" not in runtime.lifecycle.installed:
            runtime.lifecycle.installed.add("sqlalchemy")
            runtime.sqlalchemy_hooks = instrument_sqlalchemy(
                config, runtime.insight, runtime.redactor, observer.duration_histogram
            )

    def celery_imported(module: object) -> None:
        from .celery import instrument_celery

        instrument_celery(config, runtime.insight, runtime.error_messages)

    instrumentation.when_imported("sqlalchemy", sqlalchemy_imported)
    instrumentation.when_imported("celery", celery_imported)
    if config.metrics_on and "metrics" not in runtime.lifecycle.installed:
        runtime.lifecycle.installed.add("metrics")
        from .metrics.instrumentation import instrument as instrument_metrics

        instrument_metrics(config)
    if config.sentry.dsn:
        from .sentry import setup_sentry

        setup_sentry(config, runtime.redactor, runtime.error_messages)


_WRAPPER_HOOK = "_otel_django_under_wrapper"


def hooked_by_wrapper() -> bool:
    """Whether ``opentelemetry-instrument``'s configurator installed the setup hook."""
    from django.apps import registry

    return bool(getattr(registry.Apps.populate, _WRAPPER_HOOK, False))


def hook_django_setup(under_wrapper: bool = False) -> None:
    """Runs :func:`setup_django` each time ``django.setup()`` has populated the app registry.

    Under ``opentelemetry-instrument`` (``under_wrapper``) that is how setup happens at all;
    afterwards it keeps the logging pipeline in place when ``django.setup()`` runs again.
    """
    from django.apps import registry

    original = registry.Apps.populate
    if getattr(original, "_otel_django_hook", False):
        return

    def populate(self: registry.Apps, installed_apps: Any = None) -> None:
        original(self, installed_apps)
        if self is registry.apps and self.ready:
            setup_django(under_wrapper)

    populate._otel_django_hook = True  # type: ignore[attr-defined]
    setattr(populate, _WRAPPER_HOOK, under_wrapper)
    registry.Apps.populate = populate  # type: ignore[method-assign]
