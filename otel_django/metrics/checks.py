"""System checks of the metrics endpoint."""

from __future__ import annotations

from django.core.checks import CheckMessage, Warning

from ..config import Config


def check_metrics(config: Config) -> list[CheckMessage]:
    if not config.metrics_enabled:
        return []
    if not config.metrics_password and not config.metrics_password_file:
        return [Warning(
            "No metrics password is set, so /metrics answers 401 to everyone (fail closed).",
            hint="Set OTEL_DJANGO_METRICS_PASSWORD or OTEL_DJANGO_METRICS_PASSWORD_FILE.",
            id="otel_django.W101",
        )]
    return []
