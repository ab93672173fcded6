"""otel_django: an OpenTelemetry distribution for Django.

Add ``"otel_django"`` to ``INSTALLED_APPS`` (or run under ``opentelemetry-instrument``) and
``path("", include("otel_django.urls"))`` to your URLs. Importing this package never reads
Django settings: the ``opentelemetry-instrument`` wrapper loads it before Django is configured.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
