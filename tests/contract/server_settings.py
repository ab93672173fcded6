"""Settings of the server subprocesses of the contract tests: the demo, with otel_django's
URLs also mounted under ``ops/``, and ``OTEL_DJANGO`` keys added from the JSON in
``CONTRACT_OTEL_DJANGO`` (hooks as dotted paths, say)."""

import json
import os

from demo.settings import *  # noqa: F403
from demo.settings import OTEL_DJANGO

ROOT_URLCONF = "tests.contract.urls"
OTEL_DJANGO = {**OTEL_DJANGO, **json.loads(os.environ.get("CONTRACT_OTEL_DJANGO", "{}"))}

if os.environ.get("CONTRACT_POSTGRES_DB"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ["CONTRACT_POSTGRES_DB"],
            "USER": "postgres",
            "HOST": os.environ.get("OTEL_DJANGO_TEST_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("OTEL_DJANGO_TEST_PG_PORT", "5432"),
            "OPTIONS": {"connect_timeout": 3},
        }
    }
