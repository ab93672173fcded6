from __future__ import annotations

from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured

from .config import ConfigError


class OtelDjangoConfig(AppConfig):
    name = "otel_django"
    verbose_name = "OpenTelemetry for Django"
    default = True

    def ready(self) -> None:
        from . import checks, startup  # noqa: F401 - registers the system checks

        try:
            startup.setup_django()
        except ConfigError as exc:
            raise ImproperlyConfigured(f"otel_django: {exc}") from exc
