from django.core.management.base import BaseCommand

from shop.models import Category, Product


class Command(BaseCommand):
    help = "Creates the demo shop's categories and products (idempotent)."

    def handle(self, *args: object, **options: object) -> None:
        for c in range(5):
            category, _ = Category.objects.get_or_create(name=f"category-{c}")
            for p in range(10):
                Product.objects.get_or_create(
                    name=f"product-{c}-{p}",
                    category=category,
                    defaults={"price_cents": 100 * p + 99},
                )
        self.stdout.write(f"{Product.objects.count()} products")
