"""Views the database-insight tests call through the real middleware, on the ``postgres`` alias."""

from __future__ import annotations

import contextlib

from django.db import DatabaseError, connections
from django.http import HttpRequest, JsonResponse
from shop.models import Category, Product

ALIAS = "postgres"
CANARY = "canary-7f3a9c-secret"  # must never reach any telemetry


def slow(request: HttpRequest) -> JsonResponse:
    with connections[ALIAS].cursor() as cursor:
        cursor.execute("SELECT pg_sleep(%s)", [0.15])  # the slow query
    return JsonResponse({"slow": True})


def fast(request: HttpRequest) -> JsonResponse:
    product = Product.objects.using(ALIAS).order_by("id").first()
    return JsonResponse({"id": product.pk if product else None})


def n_plus_one(request: HttpRequest) -> JsonResponse:
    products = Product.objects.using(ALIAS).order_by("id")
    names = [(p.name, p.category.name) for p in products]  # one query per product
    return JsonResponse({"products": names})


def select_related(request: HttpRequest) -> JsonResponse:
    products = Product.objects.using(ALIAS).select_related("category").order_by("id")
    names = [(p.name, p.category.name) for p in products]
    return JsonResponse({"products": names})


def prefetch_related(request: HttpRequest) -> JsonResponse:
    categories = Category.objects.using(ALIAS).prefetch_related("products").order_by("id")
    names = [(c.name, [p.name for p in c.products.all()]) for c in categories]
    return JsonResponse({"categories": names})


def queries(request: HttpRequest, count: int) -> JsonResponse:
    """Exactly ``count`` queries, ORM and raw; with ``?fail=1`` the first fails (on SQLite,
    where a failed statement leaves the transaction usable)."""
    for n in range(count):
        if n == 0 and request.GET.get("fail"):
            with contextlib.suppress(DatabaseError), connections["default"].cursor() as cursor:
                cursor.execute("SELECT no_such_column FROM no_such_table")
        elif n % 2:
            Product.objects.using(ALIAS).filter(pk=n).exists()
        else:
            with connections[ALIAS].cursor() as cursor:
                cursor.execute("SELECT %s", [n])
    return JsonResponse({"queries": count})


def canary(request: HttpRequest) -> JsonResponse:
    """The canary as a parameter and as a literal, in fast and slow queries."""
    found = list(Product.objects.using(ALIAS).filter(name=CANARY).values_list("id", flat=True))
    with connections[ALIAS].cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM shop_product WHERE name = '{CANARY}'")
        cursor.execute(  # slow, so it is also logged and EXPLAINed
            "SELECT pg_sleep(0.12), count(*) FROM shop_product "
            f"WHERE name = %s OR name = '{CANARY}'",
            [CANARY],
        )
    return JsonResponse({"found": found})


def canary_error(request: HttpRequest) -> JsonResponse:
    """A query that fails with the canary in PostgreSQL's message and its ``LINE 1`` detail,
    as a literal or (``?via=parameter``) as a parameter; the view lets the error escape."""
    with connections[ALIAS].cursor() as cursor:
        if request.GET.get("via") == "parameter":
            cursor.execute("SELECT %s::int", [CANARY])
        else:
            cursor.execute(f"SELECT '{CANARY}'::int")
    return JsonResponse({})
