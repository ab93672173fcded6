"""The demo shop's rows, created in a test database."""

from __future__ import annotations

from shop.models import Category, Product

__all__ = ["seed"]


def seed(alias: str, products: int = 8) -> None:
    categories = [Category.objects.using(alias).create(name=f"cat-{n}") for n in range(3)]
    for n in range(products):
        Product.objects.using(alias).create(
            name=f"product-{n}", price_cents=100 + n, category=categories[n % 3]
        )
