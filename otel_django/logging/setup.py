"""Configures structlog and stdlib logging as one JSON pipeline."""

from __future__ import annotations

from ..config import Config


def configure_logging(config: Config) -> None:
    """Sets up the pipeline once, unless LOGGING_ENABLED is off."""
