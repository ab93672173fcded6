"""Health probes: ``healthz`` (liveness) and ``readyz`` (readiness).

Liveness answers ``{"status": "ok"}`` without touching any dependency: a liveness failure
restarts the container, which never fixes a database outage. Readiness runs every check of
:mod:`otel_django.health.checks` within ``HEALTH_CHECK_TIMEOUT_S`` and answers 503 when one
fails, so the load balancer stops sending traffic to this instance until it recovers.

Both answer GET and HEAD (a HEAD gets the same status and headers; the server drops the body);
other methods get 405.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from . import checks

__all__ = ["healthz", "readyz"]


@login_not_required
@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers HTTP. No dependency is checked."""
    return JsonResponse({"status": "ok"})


@login_not_required
@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: databases, caches, Redis, migrations and registered checks all answer."""
    ready, results = checks.readiness()
    body = {
        "status": "ok" if ready else "fail",
        "checks": {name: result.as_dict() for name, result in results.items()},
    }
    return JsonResponse(body, status=200 if ready else 503)
