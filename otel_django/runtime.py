"""The configuration in effect in this process.

Startup stores the :class:`~otel_django.config.Config` it set things up with; views, checks
and hooks read it here. When nothing has been set up yet (a view imported by a test, say), the
configuration is loaded from the environment and Django settings on first use (an invalid
one gives the configuration with telemetry off, as startup does).
"""

from __future__ import annotations

import os
import threading

from .config import Config, ConfigError, disabled_config, load_config

_lock = threading.Lock()
_active: Config | None = None


def django_settings_dict() -> dict[str, object]:
    """The ``OTEL_DJANGO`` dict of Django settings; reads settings, so call it only after setup."""
    from django.conf import settings

    value = getattr(settings, "OTEL_DJANGO", None)
    return {} if value is None else value


def get_config() -> Config:
    global _active
    config = _active
    if config is None:
        with _lock:
            if _active is None:
                try:
                    _active = load_config(os.environ, django_settings_dict())
                except ConfigError:  # reported by startup and by otel_django.E001
                    _active = disabled_config()
            config = _active
    return config


def set_config(config: Config) -> None:
    global _active
    with _lock:
        _active = config
