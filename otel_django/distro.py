"""Entry points for ``opentelemetry-instrument``: the ``otel_django`` distro and configurator.

The distro only sets defaults the user has not set (``os.environ.setdefault``). Django
settings are not configured yet when the wrapper runs, so the configurator hooks setup to run
right after ``django.setup()``: then environment and ``OTEL_DJANGO`` settings both count, as
with ``INSTALLED_APPS``, and this works even when ``"otel_django"`` is not installed as an app.

The wrapper hands each ``opentelemetry_instrumentor`` entry point to
:meth:`OtelDjangoDistro.load_instrumentor`, which applies it when its library is first
imported (``instrumentation.py``), skips ``django`` (otel_django's middleware makes the
server spans) and applies nothing under ``OTEL_SDK_DISABLED=true``.

With several distros installed the wrapper loads the one ``OTEL_PYTHON_DISTRO`` names, else
the first entry point it finds (``opentelemetry-distro`` registers one named ``distro``):
set ``OTEL_PYTHON_DISTRO=otel_django`` and ``OTEL_PYTHON_CONFIGURATOR=otel_django`` beside it.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro

from ._compat import base_configurator
from .instrumentation import REPLACED_INSTRUMENTORS

logger = logging.getLogger("otel_django")


class OtelDjangoDistro(BaseDistro):  # type: ignore[misc]
    def _configure(self, **kwargs: Any) -> None:
        from .startup import apply_environment_defaults

        apply_environment_defaults()

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        from .config import sdk_disabled
        from .instrumentation import apply_lazily

        if sdk_disabled(os.environ):
            return
        if entry_point.name in REPLACED_INSTRUMENTORS:
            logger.debug("skipping instrumentor %s: otel_django replaces it", entry_point.name)
            return
        load = super().load_instrumentor

        def apply() -> None:
            try:
                load(entry_point, **kwargs)
            except ImportError as exc:  # the library is not installed
                logger.debug("instrumentation %s skipped: %s", entry_point.name, exc)

        apply_lazily(entry_point, apply)


class OtelDjangoConfigurator(base_configurator()):  # type: ignore[misc]
    """Defers setup until Django's app registry is ready, when settings can be read.

    The instrumentors the wrapper installs meanwhile use the API's proxy tracers and meters,
    which resolve to otel_django's providers once they exist.
    """

    def _configure(self, **kwargs: Any) -> None:
        from .startup import hook_django_setup

        hook_django_setup(under_wrapper=True)
