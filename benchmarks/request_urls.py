"""URLconf of the request benchmark: the demo shop's routes, then one small view.

The benchmarked view runs one ORM query. It comes after the shop's routes so URL resolution
does the work it does in a real project with a few routes.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from shop.models import Product


def product_name(request: HttpRequest, pk: int) -> JsonResponse:
    name = Product._default_manager.values_list("name", flat=True).get(pk=pk)
    return JsonResponse({"id": pk, "name": name})


urlpatterns = [
    path("", include("shop.urls")),
    path("bench/products/<int:pk>/", product_name, name="bench-product"),
]
