from django.urls import include, path

from . import views

urlpatterns = [
    path("", include("otel_django.urls")),
    path("db/slow/", views.slow),
    path("db/fast/", views.fast),
    path("db/n-plus-one/", views.n_plus_one),
    path("db/select-related/", views.select_related),
    path("db/prefetch-related/", views.prefetch_related),
    path("db/canary/", views.canary),
    path("db/canary-error/", views.canary_error),
    path("db/queries/<int:count>/", views.queries),
]
