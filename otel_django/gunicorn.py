"""gunicorn hooks: ``gunicorn -c python:otel_django.gunicorn ...``.

With your own config file, import them there: ``from otel_django.gunicorn import post_fork,
worker_exit``. ``post_fork`` creates the worker's providers (the fork hook usually has already);
``worker_exit`` flushes pending spans when a worker stops (SIGTERM, max-requests, reload), since
gunicorn workers may exit without running ``atexit`` handlers.
"""

from __future__ import annotations

from typing import Any

from . import startup


def post_fork(server: Any, worker: Any) -> None:
    startup.after_fork()


def worker_exit(server: Any, worker: Any) -> None:
    startup.shutdown()
