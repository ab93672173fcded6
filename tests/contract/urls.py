"""The demo's URLs with otel_django's views under a prefix (``ops/metrics`` ...), and once
more under a prefix with a converter, which ``reverse()`` cannot give without arguments."""

from django.urls import include, path

urlpatterns = [
    path("ops/", include("otel_django.urls")),
    path("<slug:tenant>/ops/", include("otel_django.urls", namespace="tenant-ops")),
    path("", include("shop.urls")),
]
