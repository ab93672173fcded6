"""Settings of the server subprocess the end-to-end database tests start.

The demo's settings with the ``tests.db`` views, the SQLite file in DEMO_SQLITE_PATH as
``default`` and, as ``postgres``, the test database pytest-django created (OTEL_DJANGO_TEST_DB).
"""

import os

from demo.settings import *  # noqa: F403

ROOT_URLCONF = "tests.db.urls"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["DEMO_SQLITE_PATH"],
    },
    "postgres": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("OTEL_DJANGO_TEST_DB", "test_otel_django"),
        "USER": "postgres",
        "HOST": os.environ.get("OTEL_DJANGO_TEST_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("OTEL_DJANGO_TEST_PG_PORT", "5432"),
        "OPTIONS": {"connect_timeout": 3},
    },
}
