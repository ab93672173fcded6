"""Entry points for ``opentelemetry-instrument``: the ``otel_django`` distro and configurator.

The distro only sets defaults the user has not set (``os.environ.setdefault``). Django
settings are not configured yet when the wrapper runs, so the configurator hooks setup to run
right after ``django.setup()``: then environment and ``OTEL_DJANGO`` settings both count, as
with ``INSTALLED_APPS``, and this works even when ``"otel_django"`` is not installed as an app.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro
from opentelemetry.sdk._configuration import _BaseConfigurator

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


class OtelDjangoConfigurator(_BaseConfigurator):
    """Defers setup until Django's app registry is ready, when settings can be read.

    The instrumentors the wrapper installs meanwhile use the API's proxy tracers and meters,
    which resolve to otel_django's providers once they exist.
    """

    def _configure(self, **kwargs: Any) -> None:
        from . import startup

        startup.under_wrapper = True
        startup.hook_django_setup()
