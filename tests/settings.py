"""Django settings for the test suite: the demo shop, plus a ``postgres`` alias.

Test databases get the name in OTEL_DJANGO_TEST_DB (default ``test_otel_django``) so that
concurrent runs on one PostgreSQL server do not collide.
"""

import os

from demo.settings import *  # noqa: F403

TEST_DB_NAME = os.environ.get("OTEL_DJANGO_TEST_DB", "test_otel_django")
POSTGRES_HOST = os.environ.get("OTEL_DJANGO_TEST_PG_HOST", "127.0.0.1")
POSTGRES_PORT = os.environ.get("OTEL_DJANGO_TEST_PG_PORT", "5432")

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": ":memory:",
        "TEST": {"NAME": f"file:{TEST_DB_NAME}?mode=memory&cache=shared"},
    },
    "postgres": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "test",
        "USER": "postgres",
        "HOST": POSTGRES_HOST,
        "PORT": POSTGRES_PORT,
        "OPTIONS": {"connect_timeout": 3},
        "TEST": {"NAME": TEST_DB_NAME},
    },
}

OTEL_DJANGO = {
    "SERVICE_NAME": "otel-django-tests",
    "TELEMETRY_IN_TESTS": True,  # this suite asserts on telemetry
    "TRACES_EXPORTER": "none",
    "METRICS_PASSWORD": "test-metrics-password",
}
