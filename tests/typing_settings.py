"""Minimal Django settings for mypy's django-stubs plugin (it imports a settings module)."""

SECRET_KEY = "typing-only"
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes", "otel_django"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
