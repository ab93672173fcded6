"""Health probes: ``healthz`` (liveness) and ``readyz`` (readiness).

Liveness answers ``{"status": "ok"}`` without touching any dependency: a liveness failure
restarts the container, which never fixes a database outage. Readiness runs every check of
:mod:`otel_django.health.checks` within ``HEALTH_CHECK_TIMEOUT_S`` and answers 503 when one
fails, so the load balancer stops sending traffic to this instance until it recovers.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from . import checks

__all__ = ["healthz", "readyz"]


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers HTTP. No dependency is checked."""
    return JsonResponse({"status": "ok"})


@login_not_required
@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: databases, caches, Redis, migrations and registered checks all answer."""
    ready, results = checks.readiness()
    body = {
        "status": "ok" if ready else "fail",
        "checks": {name: result.as_dict() for name, result in results.items()},
    }
    return JsonResponse(body, status=200 if ready else 503)
