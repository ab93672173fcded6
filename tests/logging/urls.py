"""Views for the log tests: they log from structlog and stdlib loggers, sync and async."""

from __future__ import annotations

import asyncio
import logging
import time

import structlog
from django.db import connections
from django.http import HttpRequest, JsonResponse
from django.urls import include, path

log = structlog.get_logger("tests.views")
stdlib_log = logging.getLogger("tests.views")
DB_ERROR_CANARY = "db-error-canary-9e4c"  # quoted by PostgreSQL's message: never in telemetry


def sync_view(request: HttpRequest) -> JsonResponse:
    log.info("in view", step=1)
    time.sleep(0.005)  # lets the other threads' requests interleave with this one
    stdlib_log.info("stdlib in view %s", 2)
    return JsonResponse({"ok": True})


async def async_view(request: HttpRequest) -> JsonResponse:
    log.info("in async view", step=1)
    await asyncio.sleep(0.005)
    stdlib_log.info("stdlib in async view %s", 2)
    return JsonResponse({"ok": True})


def form_view(request: HttpRequest) -> JsonResponse:
    """Logs the form it got, as careless code does: sensitive fields must come out redacted."""
    log.info("form received", **request.POST.dict())
    stdlib_log.info("form received", extra={"form": request.POST.dict()})
    return JsonResponse({"ok": True})


def form_then_fail(request: HttpRequest) -> JsonResponse:
    stdlib_log.info("form received", extra={"form": request.POST.dict()})
    raise RuntimeError("failed after reading the form")


def database_error(request: HttpRequest) -> JsonResponse:
    """A query that fails on PostgreSQL with a value in its message and its LINE 1 detail."""
    with connections["postgres"].cursor() as cursor:
        cursor.execute(f"SELECT '{DB_ERROR_CANARY}'::int")
    return JsonResponse({"ok": True})


urlpatterns = [
    path("db-error/", database_error),
    path("form-fail/", form_then_fail),
    path("log/", sync_view),
    path("alog/", async_view),
    path("form/", form_view),
    path("", include("demo.urls")),
]
