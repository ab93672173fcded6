"""One access-log line per request."""

from __future__ import annotations

import ipaddress

import structlog
from django.http import HttpRequest

from ..config import Config
from ..redaction import Redactor


def client_address(request: HttpRequest, trust_x_forwarded_for: bool) -> str | None:
    """REMOTE_ADDR, or the first X-Forwarded-For address when trusted and well-formed."""
    if trust_x_forwarded_for:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        first = forwarded.split(",", 1)[0].strip()
        if first:
            try:
                return str(ipaddress.ip_address(first))
            except ValueError:
                pass
    remote = request.META.get("REMOTE_ADDR")
    return remote or None


class AccessLog:
    def __init__(self, config: Config, redactor: Redactor) -> None:
        self._logger = structlog.get_logger("otel_django.access")
        self._slow_ms = config.slow_request_ms
        self._trust_xff = config.trust_x_forwarded_for
        self._log_user_id = config.log_user_id
        self._redactor = redactor

    def log(
        self,
        request: HttpRequest,
        method: str,
        route: str | None,
        status: int,
        duration_ms: float,
        response_size: int | None,
    ) -> None:
        query = request.META.get("QUERY_STRING", "")
        path = request.path
        if query:
            path = f"{path}?{self._redactor.query_string(query)}"
        fields: dict[str, object] = {
            "http.request.method": method,
            "http.route": route,
            "url.path": path,
            "http.response.status_code": status,
            "duration_ms": round(duration_ms, 3),
            "http.response.body.size": response_size,
            "client.address": client_address(request, self._trust_xff),
        }
        if self._log_user_id:
            user = getattr(request, "user", None)
            if user is not None and getattr(user, "is_authenticated", False):
                fields["user.id"] = str(user.pk)
        if duration_ms >= self._slow_ms:
            self._logger.warning("slow request", **fields)
        elif status >= 500:
            self._logger.error("request", **fields)
        else:
            self._logger.info("request", **fields)
