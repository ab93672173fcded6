"""URLs of otel_django: ``path("", include("otel_django.urls"))`` in the project's urls.py.

Serves ``/metrics`` (Prometheus, behind basic auth), ``/healthz`` (liveness) and ``/readyz``
(readiness). Their default paths are in EXCLUDED_URLS, so they make no spans and no
request metrics; a system check warns when they are mounted where EXCLUDED_URLS misses them.
"""

from django.urls import path

from .health import views as health_views
from .metrics import views as metrics_views

app_name = "otel_django"

urlpatterns = [
    path("metrics", metrics_views.metrics, name="metrics"),
    path("healthz", health_views.healthz, name="healthz"),
    path("readyz", health_views.readyz, name="readyz"),
]
