"""URLs of otel_django: ``path("", include("otel_django.urls"))`` in the project's urls.py.

Serves ``/metrics`` (Prometheus, behind basic auth), ``/healthz`` (liveness) and ``/readyz``
(readiness). The middleware recognises them by view wherever they are mounted: they make no
spans and no request metrics.
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
