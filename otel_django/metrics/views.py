"""The Prometheus endpoint (being written)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse


def metrics(request: HttpRequest) -> HttpResponse:
    return HttpResponse("not implemented yet", status=503)
