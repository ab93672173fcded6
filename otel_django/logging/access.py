"""One access-log line per request, logged by the middleware while the request's span is current.

Keys: ``http.request.method``, ``http.route`` (the template, ``None`` when nothing matched),
``url.path``, ``url.query`` (sensitive values redacted; only when there is a query),
``http.response.status_code``, ``duration_ms``, ``otel_django.db.query_count`` and
``otel_django.db.query_duration_ms`` (the request's database queries: how many, how long in
total), ``http.response.body.size`` (``None`` when streamed), ``client.address`` and, with
``LOG_USER_ID``, ``user.id``. Level: ``warning`` from
``SLOW_REQUEST_MS`` on (event ``slow request``), ``error`` for 5xx, else ``info``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import structlog
from django.http import HttpRequest

from ..client import client_address
from ..config import Config
from ..redaction import Redactor

MAX_PATH_LENGTH = 2048


def _user_id(request: HttpRequest) -> str | None:
    with contextlib.suppress(Exception):  # a session backend that is down, say
        user = getattr(request, "user", None)  # may load the session and the user
        if user is not None and user.is_authenticated:
            return str(user.pk)
    return None


class AccessLog:
    def __init__(self, config: Config, redactor: Redactor) -> None:
        # The bound logger itself, not structlog's lazy proxy: a proxy resolves on every call.
        self._logger = structlog.get_logger("otel_django.access").bind()
        self._slow_ms = config.logging.slow_request_ms
        self._trust_xff = config.trust_x_forwarded_for
        self._log_user_id = config.logging.log_user_id
        self._redactor = redactor

    def log(
        self,
        request: HttpRequest,
        method: str,
        route: str | None,
        status: int,
        duration_ms: float,
        response_size: int | None,
        db_summary: Mapping[str, object] | None = None,
    ) -> None:
        path = request.path
        if len(path) > MAX_PATH_LENGTH:
            path = path[:MAX_PATH_LENGTH] + "..."
        fields: dict[str, object] = {
            "http.request.method": method,
            "http.route": route,
            "url.path": path,
        }
        query = request.META.get("QUERY_STRING")
        if query:
            fields["url.query"] = self._redactor.query_string(query)[:MAX_PATH_LENGTH]
        fields["http.response.status_code"] = status
        fields["duration_ms"] = round(duration_ms, 3)
        if db_summary is not None:
            fields.update(db_summary)
        fields["http.response.body.size"] = response_size
        fields["client.address"] = client_address(request.META, self._trust_xff)
        if self._log_user_id:
            user_id = _user_id(request)
            if user_id is not None:
                fields["user.id"] = user_id
        if duration_ms >= self._slow_ms:
            self._logger.warning("slow request", **fields)
        elif status >= 500:
            self._logger.error("request", **fields)
        else:
            self._logger.info("request", **fields)
