"""System checks (``manage.py check``): misconfiguration reported, not found in production.

They read the process's one configuration (:func:`otel_django.runtime.current`): the one
setup runs with, or, where setup has not run, the one it would run with.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core.checks import CheckMessage, Error, Warning, register

from . import runtime

UPSTREAM_MIDDLEWARE = "opentelemetry.instrumentation.django.middleware.otel_middleware"


@register("otel_django")
def check_configuration(
    app_configs: Sequence[AppConfig] | None, **kwargs: Any
) -> list[CheckMessage]:
    current = runtime.current()
    if current.error is not None:
        return [
            Error(
                f"{current.error}. otel_django runs without telemetry until it is fixed.",
                id="otel_django.E001",
                hint="Fix the value in the environment or in settings.OTEL_DJANGO.",
            )
        ]
    config = current.config
    if config.sdk_disabled or runtime.quiet_in_tests(config):
        return []  # deployment advice is noise in a test run, and moot with the SDK off
    messages: list[CheckMessage] = []
    messages.extend(_check_upstream_middleware())
    if config.sentry.dsn and importlib.util.find_spec("sentry_sdk") is None:
        messages.append(
            Warning(
                "SENTRY_DSN is set but sentry-sdk is not installed: errors are not sent to Sentry.",
                hint="pip install 'otel_django[sentry]'",
                id="otel_django.W003",
            )
        )
    from .metrics.checks import check_metrics

    messages.extend(check_metrics(config))
    return messages


def _check_upstream_middleware() -> list[CheckMessage]:
    """Upstream's Django middleware beside otel_django's: two server spans per request, and
    /metrics, /healthz and /readyz traced (otel_django never traces its own views)."""
    from django.conf import settings

    listed = [m for m in getattr(settings, "MIDDLEWARE", ()) if m.startswith(UPSTREAM_MIDDLEWARE)]
    if not listed:
        return []
    return [
        Warning(
            f"{listed[0]} is in MIDDLEWARE beside otel_django's middleware: every request "
            "gets two server spans, and otel_django's own views are traced.",
            hint="Remove DjangoInstrumentor().instrument() (otel_django's middleware replaces "
            "it), or set OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=django.",
            id="otel_django.W002",
        )
    ]
