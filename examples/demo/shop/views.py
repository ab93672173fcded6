"""Views of the demo shop: each exercises one kind of telemetry."""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import structlog
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404

from .models import Product

log = structlog.get_logger(__name__)
stdlib_log = logging.getLogger(__name__)


def product_list(request: HttpRequest) -> JsonResponse:
    products = Product.objects.select_related("category").order_by("id")[:50]
    data = [{"id": p.id, "name": p.name, "category": p.category.name} for p in products]
    log.info("products listed", count=len(data))
    return JsonResponse({"products": data})


def product_detail(request: HttpRequest, pk: int) -> JsonResponse:
    product = get_object_or_404(Product.objects.select_related("category"), pk=pk)
    return JsonResponse({"id": product.id, "name": product.name, "category": product.category.name})


def n_plus_one(request: HttpRequest) -> JsonResponse:
    """Lists products the slow way: one extra query per product for its category."""
    names = [(p.name, p.category.name) for p in Product.objects.order_by("id")[:20]]
    return JsonResponse({"products": names})


def slow_query(request: HttpRequest) -> JsonResponse:
    """Runs one query that takes a few hundred milliseconds on purpose."""
    with connection.cursor() as cursor:
        # demo_sleep is registered on SQLite connections by ShopConfig.ready().
        sleep = "pg_sleep" if connection.vendor == "postgresql" else "demo_sleep"
        cursor.execute(f"SELECT {sleep}(%s), count(*) FROM shop_product", [0.3])
        cursor.fetchall()
    return JsonResponse({"slow": True})


def cached(request: HttpRequest) -> JsonResponse:
    count = cache.get("product-count")
    hit = count is not None
    if count is None:
        count = Product.objects.count()
        cache.set("product-count", count, timeout=30)
    return JsonResponse({"product_count": count, "cache_hit": hit})


def redis_view(request: HttpRequest) -> JsonResponse:
    url = getattr(settings, "REDIS_URL", "") or os.environ.get("REDIS_URL", "")
    if not url:
        return JsonResponse({"redis": "REDIS_URL is not set"})
    import redis

    client = redis.Redis.from_url(url, socket_timeout=1)
    visits = client.incr("demo:visits")
    return JsonResponse({"visits": visits})


@functools.cache
def _sqlalchemy_engine() -> Any:
    import sqlalchemy

    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("postgresql"):
        url = sqlalchemy.URL.create(
            "postgresql+psycopg",
            username=db["USER"],
            password=db["PASSWORD"] or None,
            host=db["HOST"],
            port=int(db["PORT"]),
            database=db["NAME"],
        )
    else:
        url = sqlalchemy.URL.create("sqlite", database=str(db["NAME"]))
    return sqlalchemy.create_engine(url, pool_size=5)


def sqlalchemy_view(request: HttpRequest) -> JsonResponse:
    import sqlalchemy

    with _sqlalchemy_engine().connect() as conn:
        total = conn.execute(sqlalchemy.text("SELECT count(*) FROM shop_product")).scalar_one()
    return JsonResponse({"products": total})


async def product_count_async(request: HttpRequest) -> JsonResponse:
    """An async view: the ORM's async API, still inside the request's trace and log context."""
    count = await Product.objects.acount()
    await log.ainfo("products counted", count=count)
    return JsonResponse({"product_count": count})


def boom(request: HttpRequest) -> JsonResponse:
    stdlib_log.info("about to fail")
    raise RuntimeError("demo failure: this view always raises")
