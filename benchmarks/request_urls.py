"""URLconf of the request benchmark: the demo shop's routes, then the benchmarked views.

``bench/queries/<count>/`` runs ``count`` ORM queries (the same ``get()`` each time) and
returns 38 bytes of JSON. It comes after the shop's routes so URL resolution does the work
it does in a real project with a few routes.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from shop.models import Product


def product_name(request: HttpRequest, pk: int) -> JsonResponse:
    name = Product._default_manager.values_list("name", flat=True).get(pk=pk)
    return JsonResponse({"id": pk, "name": name})


def queries(request: HttpRequest, count: int) -> JsonResponse:
    manager = Product._default_manager
    name = ""
    for _ in range(count):
        name = manager.values_list("name", flat=True).get(pk=1)
    return JsonResponse({"id": 1, "name": name})


urlpatterns = [
    path("", include("shop.urls")),
    path("bench/products/<int:pk>/", product_name, name="bench-product"),
    path("bench/queries/<int:count>/", queries, name="bench-queries"),
]
