"""System checks (``manage.py check``): misconfiguration reported, not found in production."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core.checks import CheckMessage, Error, Warning, register
from django.urls import NoReverseMatch, reverse

from .config import ConfigError, load_config
from .runtime import django_settings_dict


@register("otel_django")
def check_configuration(
    app_configs: Sequence[AppConfig] | None, **kwargs: Any
) -> list[CheckMessage]:
    try:
        config = load_config(os.environ, django_settings_dict())
    except ConfigError as exc:
        return [
            Error(
                str(exc),
                id="otel_django.E001",
                hint="Fix the value in the environment or in settings.OTEL_DJANGO.",
            )
        ]
    messages: list[CheckMessage] = []
    regex = config.excluded_urls_regex
    for name in ("metrics", "healthz", "readyz"):
        try:
            path = reverse(f"otel_django:{name}")
        except NoReverseMatch:
            continue
        if regex is None or not regex.search(path):
            messages.append(
                Warning(
                    f"{path} (otel_django:{name}) is not matched by EXCLUDED_URLS, so probes and "
                    "scrapes make spans and request metrics.",
                    hint=f"Add r'^{path}$' to OTEL_DJANGO['EXCLUDED_URLS'].",
                    id="otel_django.W002",
                )
            )
    if config.sentry_dsn and importlib.util.find_spec("sentry_sdk") is None:
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
