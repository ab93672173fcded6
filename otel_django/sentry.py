"""Sentry, linked to OpenTelemetry traces, when SENTRY_DSN is set and sentry-sdk is installed."""

from __future__ import annotations

from .config import Config


def setup_sentry(config: Config) -> None:
    """Initialises sentry-sdk once, if configured."""
