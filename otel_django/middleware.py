"""The one middleware otel_django adds: server span, HTTP metrics, request id, access log.

It does all of it in one pass and reads only what Django has already computed (the resolved
route, the response), which is why it replaces upstream's Django middleware: see
``benchmarks/README.md`` for the profile behind that choice.

It is inserted first in ``MIDDLEWARE`` at startup; list
``"otel_django.middleware.OtelDjangoMiddleware"`` there yourself to choose its place.
"""

from __future__ import annotations

import contextlib
import logging
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.db import Error as DatabaseError
from django.http import HttpRequest, HttpResponseBase
from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode

from . import __version__
from .config import Config
from .db import insight
from .logging.access import AccessLog
from .logging.request_id import accept_request_id
from .metrics.http import HttpServerMetrics
from .redaction import Redactor
from .runtime import get_config
from .traces import spans

KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"}
)
REQUEST_ID_ATTRIBUTE = "otel_django.request_id"


class _MetaGetter(Getter[dict[str, Any]]):
    """Reads propagation headers (``traceparent``...) from ``request.META``."""

    def get(self, carrier: dict[str, Any], key: str) -> list[str] | None:
        value = carrier.get("HTTP_" + key.upper().replace("-", "_"))
        return None if value is None else [value]

    def keys(self, carrier: dict[str, Any]) -> list[str]:
        return [k[5:].lower().replace("_", "-") for k in carrier if k.startswith("HTTP_")]


_META_GETTER = _MetaGetter()


class _RequestState:
    __slots__ = ("active_attributes", "method", "request_id", "span", "start", "tokens")

    def __init__(
        self,
        span: trace.Span,
        method: str,
        request_id: str,
        start: int,
        active_attributes: dict[str, str],
        tokens: tuple[Any, ...],
    ) -> None:
        self.span = span
        self.method = method
        self.request_id = request_id
        self.start = start
        self.active_attributes = active_attributes
        self.tokens = tokens


class OtelDjangoMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        config: Config = get_config()
        self._excluded = config.excluded_urls_regex
        self._tracer = trace.get_tracer("otel_django", __version__)
        self._metrics = (
            HttpServerMetrics(metrics.get_meter("otel_django", __version__), "otel_django")
            if config.metrics_enabled
            else None
        )
        # Extract only when a header the global propagator reads is present (usually none is).
        self._propagation_meta = tuple(
            "HTTP_" + field.upper().replace("-", "_")
            for field in propagate.get_global_textmap().fields
        )
        header = config.request_id_header
        self._request_id_meta = "HTTP_" + header.upper().replace("-", "_")
        self._request_id_header = header
        redactor = Redactor(config.redact_keys)
        self._access_log = AccessLog(config, redactor) if config.access_log else None
        self._redactor = redactor

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        if self._excluded is not None and self._excluded.search(request.path_info):
            return self.get_response(request)
        state = self._safe_start(request)
        if state is None:
            return self.get_response(request)
        response: HttpResponseBase | None = None
        try:
            response = self.get_response(request)
        finally:
            self._safe_finish(request, response, state)
        return response

    async def __acall__(self, request: HttpRequest) -> Any:
        if self._excluded is not None and self._excluded.search(request.path_info):
            return await self.get_response(request)
        state = self._safe_start(request)
        if state is None:
            return await self.get_response(request)
        response: HttpResponseBase | None = None
        try:
            response = await self.get_response(request)
        finally:
            self._safe_finish(request, response, state)
        return response

    # Telemetry never breaks the request it observes: a failure here is logged, and the
    # request is served as if otel_django were not there.
    def _safe_start(self, request: HttpRequest) -> _RequestState | None:
        try:
            return self._start(request)
        except Exception:
            _report_failure("starting")
            return None

    def _safe_finish(
        self, request: HttpRequest, response: HttpResponseBase | None, state: _RequestState
    ) -> None:
        try:
            self._finish(request, response, state)
        except Exception:
            _report_failure("finishing")
            context_token, log_tokens, scope_token = state.tokens
            with contextlib.suppress(Exception):
                insight.end_request(scope_token)
            with contextlib.suppress(Exception):
                structlog.contextvars.reset_contextvars(**log_tokens)
            with contextlib.suppress(Exception):
                otel_context.detach(context_token)

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        state: _RequestState | None = getattr(request, "_otel_django", None)
        if state is not None and state.span.is_recording():
            withheld = _without_message(exception) if isinstance(exception, DatabaseError) else None
            state.span.record_exception(exception, attributes=withheld, escaped=True)
            state.span.set_attribute("error.type", _qualified_name(type(exception)))
        if state is not None:
            request._otel_django_error = _qualified_name(type(exception))  # type: ignore[attr-defined]

    def _start(self, request: HttpRequest) -> _RequestState:
        start = time.perf_counter_ns()
        meta = request.META
        method = request.method or "GET"
        if method not in KNOWN_METHODS:
            method = "_OTHER"
        scheme = "https" if request.is_secure() else "http"
        parent = (
            propagate.extract(meta, getter=_META_GETTER)
            if any(key in meta for key in self._propagation_meta)
            else None
        )
        request_id = accept_request_id(meta.get(self._request_id_meta))
        # Cheap attributes go in at start: each set_attribute() call later takes the span's
        # lock and validates again (see benchmarks/README.md). Unsampled spans ignore them.
        attributes: dict[str, str] = {
            "http.request.method": method,
            "url.scheme": scheme,
            "url.path": request.path,
            REQUEST_ID_ATTRIBUTE: request_id,
        }
        user_agent = meta.get("HTTP_USER_AGENT")
        if user_agent:
            attributes["user_agent.original"] = user_agent[:512]
        protocol = meta.get("SERVER_PROTOCOL", "")
        if protocol.startswith("HTTP/"):
            attributes["network.protocol.version"] = protocol[5:]
        span = spans.start_span(
            self._tracer,
            "HTTP" if method == "_OTHER" else method,
            parent,
            SpanKind.SERVER,
            attributes,
            start_time=time.time_ns(),
        )
        if span.is_recording():
            if method == "_OTHER":
                span.set_attribute("http.request.method_original", _printable(request.method or ""))
            query = meta.get("QUERY_STRING")
            if query:
                span.set_attribute("url.query", self._redactor.query_string(query))
        active_attributes = {"http.request.method": method, "url.scheme": scheme}
        if self._metrics is not None:
            self._metrics.request_started(active_attributes)
        # Last, so that nothing stays bound to the thread if a step above fails.
        context_token = otel_context.attach(trace.set_span_in_context(span, parent))
        log_tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        scope_token = insight.begin_request(span)
        state = _RequestState(
            span,
            method,
            request_id,
            start,
            active_attributes,
            (context_token, log_tokens, scope_token),
        )
        request._otel_django = state  # type: ignore[attr-defined]
        return state

    def _finish(
        self, request: HttpRequest, response: HttpResponseBase | None, state: _RequestState
    ) -> None:
        duration_ns = time.perf_counter_ns() - state.start
        span = state.span
        method = state.method
        match = getattr(request, "resolver_match", None)
        route: str | None = match.route if match is not None else None
        status = response.status_code if response is not None else 500
        error_type: str | None = getattr(request, "_otel_django_error", None)
        if error_type is None and status >= 500:
            error_type = str(status)
        if response is not None:
            response[self._request_id_header] = state.request_id
        response_size = _body_size(response)
        if span.is_recording():
            final: dict[str, str | int] = {"http.response.status_code": status}
            if route:
                span.update_name(f"{'HTTP' if method == '_OTHER' else method} {route}")
                final["http.route"] = route
            if response_size is not None:
                final["http.response.body.size"] = response_size
            if error_type is not None:
                final["error.type"] = error_type
            spans.set_attributes(span, final)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
        context_token, log_tokens, scope_token = state.tokens
        insight.end_request(scope_token)  # adds its N+1 events to the span: before span.end()
        span.end()
        if self._metrics is not None:
            self._metrics.request_finished(
                state.active_attributes,
                (method, state.active_attributes["url.scheme"], status, route or None, error_type),
                duration_ns / 1e9,
                _request_size(request),
                response_size,
            )
        if self._access_log is not None:
            self._access_log.log(request, method, route, status, duration_ns / 1e6, response_size)
        structlog.contextvars.reset_contextvars(**log_tokens)
        otel_context.detach(context_token)


_failures_reported: set[str] = set()


def _report_failure(stage: str) -> None:
    """Logs the first failure of each stage with its traceback; later ones are dropped."""
    if stage not in _failures_reported:
        _failures_reported.add(stage)
        logging.getLogger("otel_django").exception(
            "otel_django failed %s a request's telemetry; the request is unaffected", stage
        )


def _without_message(exception: BaseException) -> dict[str, str]:
    """Database errors quote values of the failing statement: keep the type and frames only."""
    frames = "".join(traceback.format_tb(exception.__traceback__))
    name = _qualified_name(type(exception))
    return {
        "exception.message": "",
        "exception.stacktrace": f"Traceback (most recent call last):\n{frames}{name}",
    }


def _qualified_name(cls: type) -> str:
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def _printable(value: str) -> str:
    return value.encode("ascii", "backslashreplace").decode("ascii")[:32]


def _request_size(request: HttpRequest) -> int | None:
    raw = request.META.get("CONTENT_LENGTH")
    if not raw:
        return None
    try:
        size = int(raw)
    except ValueError:
        return None
    return size if size >= 0 else None


def _body_size(response: HttpResponseBase | None) -> int | None:
    if response is None or getattr(response, "streaming", False):
        return None
    content = getattr(response, "content", None)
    return len(content) if content is not None else None


AsyncGetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]
