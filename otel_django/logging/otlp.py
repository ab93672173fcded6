"""Optional OTLP log export, correlated with traces."""

from __future__ import annotations

from opentelemetry.sdk.resources import Resource

from ..config import Config


def setup_log_export(config: Config, resource: Resource) -> None:
    """Creates the LoggerProvider that sends log records over OTLP."""
