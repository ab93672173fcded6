from django.urls import include, path

urlpatterns = [
    path("", include("otel_django.urls")),
    path("", include("shop.urls")),
]
