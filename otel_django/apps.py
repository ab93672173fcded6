from __future__ import annotations

from django.apps import AppConfig


class OtelDjangoConfig(AppConfig):
    name = "otel_django"
    verbose_name = "OpenTelemetry for Django"
    default = True

    def ready(self) -> None:
        from . import checks, startup  # noqa: F401 - registers the system checks

        startup.setup_django()
