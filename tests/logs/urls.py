"""Views for the log tests: they log from structlog and stdlib loggers, sync and async."""

from __future__ import annotations

import asyncio
import logging
import time

import structlog
from django.http import HttpRequest, JsonResponse
from django.urls import include, path

log = structlog.get_logger("tests.views")
stdlib_log = logging.getLogger("tests.views")


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


urlpatterns = [
    path("form-fail/", form_then_fail),
    path("log/", sync_view),
    path("alog/", async_view),
    path("form/", form_view),
    path("", include("demo.urls")),
]
