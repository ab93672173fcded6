"""``GET /metrics``: every OTel metric of the server in the Prometheus text format.

OpenMetrics when the ``Accept`` header asks for it (Prometheus does), gzip when
``Accept-Encoding`` allows it. Basic auth is required, and the view serves nothing while no
password is set (fail closed); ``manage.py check`` says so. Django constructs the view: it
reads the configuration and the metrics pipeline from the process's runtime
(:func:`otel_django.runtime.current`).
"""

from __future__ import annotations

import gzip
import logging

from django.contrib.auth.decorators import login_not_required
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseForbidden,
    HttpResponseNotAllowed,
    HttpResponseNotFound,
)
from django.views.decorators.cache import never_cache

from .. import runtime
from . import auth
from .exposition import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE

logger = logging.getLogger("otel_django.metrics")


# Not prometheus_client's choose_encoder / gzip_accepted: they take the first matching type
# whatever its q (gzip;q=0 would be compressed, openmetrics-text;q=0 chosen), and
# prometheus_client is not a dependency of otel_django.
def _media_ranges(header: str) -> dict[str, float]:
    """``Accept``/``Accept-Encoding`` -> {value: q}."""
    ranges: dict[str, float] = {}
    for part in header[:2048].split(","):
        value, *params = part.split(";")
        q = 1.0
        for param in params:
            name, _, raw = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(raw)
                except ValueError:
                    q = 0.0
        value = value.strip().lower()
        if value:
            ranges[value] = max(q, ranges.get(value, 0.0))
    return ranges


def wants_openmetrics(accept: str) -> bool:
    ranges = _media_ranges(accept)
    openmetrics = ranges.get("application/openmetrics-text", 0.0)
    return openmetrics > 0 and openmetrics >= ranges.get("text/plain", 0.0)


def accepts_gzip(accept_encoding: str) -> bool:
    return _media_ranges(accept_encoding).get("gzip", 0.0) > 0


def _unauthorized() -> HttpResponse:
    response = HttpResponse("authentication required\n", status=401, content_type="text/plain")
    response["WWW-Authenticate"] = auth.WWW_AUTHENTICATE
    return response


@login_not_required
@never_cache
def metrics(request: HttpRequest) -> HttpResponseBase:
    current = runtime.current()
    config = current.config
    if not config.metrics_pulled:  # METRICS_ENABLED=false, OTEL_METRICS_EXPORTER without prometheus
        return HttpResponseNotFound("metrics are not served here\n", content_type="text/plain")
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    meta = request.META
    if not auth.client_allowed(meta, config.metrics.allowed_networks, config.trust_x_forwarded_for):
        return HttpResponseForbidden("forbidden\n", content_type="text/plain")
    password = auth.expected_password(config)
    if password is None or not auth.check_basic_auth(
        meta.get("HTTP_AUTHORIZATION"), config.metrics.username.encode(), password
    ):
        return _unauthorized()
    pipeline = current.pipeline
    if pipeline is None:
        return HttpResponse(
            "otel_django does not collect metrics in this process\n",
            status=503,
            content_type="text/plain",
        )
    accept = meta.get("HTTP_ACCEPT", "")
    openmetrics = isinstance(accept, str) and wants_openmetrics(accept)
    try:
        body = pipeline.exposition(openmetrics)
    except Exception:
        logger.exception("metrics scrape failed")
        return HttpResponse("metrics scrape failed\n", status=503, content_type="text/plain")
    response = HttpResponse(
        body, content_type=OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE
    )
    encoding = meta.get("HTTP_ACCEPT_ENCODING", "")
    if isinstance(encoding, str) and accepts_gzip(encoding):
        response.content = gzip.compress(body, compresslevel=1, mtime=0)
        response["Content-Encoding"] = "gzip"
    response["Vary"] = "Accept, Accept-Encoding"
    return response
