import time
from typing import Any

from django.apps import AppConfig
from django.db.backends.signals import connection_created


def _register_demo_sleep(sender: Any, connection: Any, **kwargs: Any) -> None:
    """SQLite has no pg_sleep: give the demo's slow view a query that takes real time."""
    if connection.vendor == "sqlite":
        connection.connection.create_function("demo_sleep", 1, time.sleep)


class ShopConfig(AppConfig):
    name = "shop"

    def ready(self) -> None:
        connection_created.connect(_register_demo_sleep, dispatch_uid="shop.demo_sleep")
