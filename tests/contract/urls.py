"""The demo's URLs with otel_django's views under a prefix (``ops/metrics`` ...), and two of
them routed directly, where ``reverse("otel_django:...")`` does not find them."""

from django.urls import include, path

from otel_django.health.views import healthz
from otel_django.metrics.views import metrics

urlpatterns = [
    path("ops/", include("otel_django.urls")),
    path("internal/live", healthz),
    path("internal/metrics", metrics),
    path("", include("shop.urls")),
]
