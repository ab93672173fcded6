"""Entry points for ``opentelemetry-instrument``: the ``otel_django`` distro and configurator.

The distro only sets defaults the user has not set (``os.environ.setdefault``); the
configurator builds the providers from the environment, since Django settings are not
configured yet when the wrapper runs. Django-side setup is hooked to run just before Django
builds its middleware chain, so it happens even when ``"otel_django"`` is not in
``INSTALLED_APPS``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro
from opentelemetry.sdk._configuration import _BaseConfigurator

from .config import ConfigError, load_config

logger = logging.getLogger("otel_django")

# Instrumentors that otel_django replaces: its middleware makes the server spans.
REPLACED_INSTRUMENTORS = frozenset({"django"})


class OtelDjangoDistro(BaseDistro):  # type: ignore[misc]
    def _configure(self, **kwargs: Any) -> None:
        from .startup import apply_environment_defaults

        apply_environment_defaults()

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        if entry_point.name in REPLACED_INSTRUMENTORS:
            logger.debug("skipping instrumentor %s: otel_django replaces it", entry_point.name)
            return
        super().load_instrumentor(entry_point, **kwargs)


class OtelDjangoConfigurator(_BaseConfigurator):  # type: ignore[misc]
    def _configure(self, **kwargs: Any) -> None:
        from . import startup

        startup.under_wrapper = True
        try:
            config = load_config(os.environ)
        except ConfigError as exc:
            logger.error("otel_django is not set up: %s", exc)
            raise
        startup.setup_providers(config)
        hook_django_setup()


def hook_django_setup() -> None:
    """Runs Django-side setup right before Django first loads its middleware."""
    from django.core.handlers import base

    original = base.BaseHandler.load_middleware
    if getattr(original, "_otel_django_hook", False):
        return

    def load_middleware(self: base.BaseHandler, is_async: bool = False) -> None:
        from . import startup

        startup.setup_django()
        original(self, is_async)

    load_middleware._otel_django_hook = True  # type: ignore[attr-defined]
    base.BaseHandler.load_middleware = load_middleware  # type: ignore[method-assign]
