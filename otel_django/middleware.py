"""The one middleware otel_django adds: server span, HTTP metrics, request id, access log.

It does all of it in one pass and reads only what Django has already computed (the resolved
route, the response), which is why it replaces upstream's Django middleware: see
``benchmarks/README.md`` for the profile behind that choice.

It is inserted first in ``MIDDLEWARE`` at startup; list
``"otel_django.middleware.OtelDjangoMiddleware"`` there yourself to choose its place. Django
constructs it, so it takes its configuration, redactor, query insight and metrics pipeline
from the process's runtime (:func:`otel_django.runtime.current`).

Upstream's options work as upstream defines them, with upstream's helpers
(``opentelemetry.util.http``, ``opentelemetry.instrumentation.utils``): header capture and
sanitising, traced request attributes, excluded URLs (searched in the full URL), and the
``request_hook`` / ``response_hook`` settings. Each costs nothing while it is not set.
otel_django's own views (metrics, probes) are never traced: their paths, as ``reverse()``
gives them for the current URLconf, are skipped before the span starts, and a request that
reaches one of them some other way is dropped from telemetry in ``process_view``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import structlog
from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import (
    BadRequest,
    MiddlewareNotUsed,
    PermissionDenied,
    SuspiciousOperation,
)
from django.http import Http404, HttpRequest, HttpResponseBase
from django.http.multipartparser import MultiPartParserError
from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.instrumentation.utils import extract_attributes_from_object
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.http import (
    ExcludeList,
    get_custom_header_attributes,
    normalise_request_header_name,
    normalise_response_header_name,
)

from . import __version__, runtime
from .db import insight
from .logging.access import AccessLog
from .logging.request_id import accept_request_id
from .metrics.http import HttpServerMetrics
from .request_state import RequestState, attach, request_state
from .semconv import REQUEST_ID_ATTRIBUTE, error_type
from .traces import spans

# upstream's sanitize_method knows the same methods, but keeps any method when
# OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS is set: the method is a metric label
# here, whose values a client must not choose. (Django upper-cases request.method itself.)
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"}
)
# What Django's handler turns into a 404, 403 or 400 response when a view raises it
# (django.core.handlers.exception.response_for_exception): for the span and the metrics, the
# response is what happened, as when the view returns it. SuspiciousOperation stays visible on
# Django's ``django.security.*`` loggers.
CLIENT_ERROR_EXCEPTIONS = (
    Http404,
    PermissionDenied,
    BadRequest,
    SuspiciousOperation,
    MultiPartParserError,
)
# otel_django's views, never traced wherever they are mounted.
OWN_URL_NAMES = ("otel_django:metrics", "otel_django:healthz", "otel_django:readyz")


class _MetaGetter(Getter[dict[str, Any]]):
    """Reads propagation headers (``traceparent``...) from ``request.META``."""

    def get(self, carrier: dict[str, Any], key: str) -> list[str] | None:
        value = carrier.get("HTTP_" + key.upper().replace("-", "_"))
        return None if value is None else [value]

    def keys(self, carrier: dict[str, Any]) -> list[str]:
        return [k[5:].lower().replace("_", "-") for k in carrier if k.startswith("HTTP_")]


_META_GETTER = _MetaGetter()


class OtelDjangoMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(
        self,
        get_response: Callable[[HttpRequest], Any],
        tracer_provider: trace.TracerProvider | None = None,
        http_metrics: HttpServerMetrics | None = None,
    ) -> None:
        """Django passes ``get_response`` alone; ``tracer_provider`` defaults to the global
        one, ``http_metrics`` to the request metrics of the global meter (when metrics are on).
        """
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        # Django constructs the middleware: it takes what it needs from the process's runtime.
        current = runtime.current()
        config = current.config
        if config.sdk_disabled:
            raise MiddlewareNotUsed("OTEL_SDK_DISABLED")
        self._own_paths: dict[object, frozenset[str]] = {}
        self._excluded = (
            ExcludeList(config.traces.excluded_urls) if config.traces.excluded_urls else None
        )
        self._traced_request_attrs = config.traces.traced_request_attrs
        self._capture_request = list(config.traces.capture_headers_server_request)
        self._capture_response = list(config.traces.capture_headers_server_response)
        self._sanitize = list(config.traces.capture_headers_sanitize_fields)
        self._request_hook = config.traces.request_hook
        self._response_hook = config.traces.response_hook
        self._tracer = trace.get_tracer("otel_django", __version__, tracer_provider)
        if http_metrics is None and config.metrics_on:
            meter = metrics.get_meter("otel_django", __version__)
            active = current.lifecycle.active_requests
            http_metrics = HttpServerMetrics(meter, "otel_django", current, active)
        self._metrics = http_metrics
        # Extract only when a header the global propagator reads is present (usually none is).
        self._propagation_meta = tuple(
            "HTTP_" + field.upper().replace("-", "_")
            for field in propagate.get_global_textmap().fields
        )
        header = config.logging.request_id_header
        self._request_id_meta = "HTTP_" + header.upper().replace("-", "_")
        self._request_id_header = header
        redactor = current.redactor
        self._access_log = AccessLog(config, redactor) if config.logging.access_log else None
        self._redactor = redactor
        self._insight = current.insight
        self._error_messages = current.error_messages
        self._own_views: frozenset[object] | None = None
        self._reported = current.lifecycle.reported  # failures logged once per process

    def _not_traced(self, request: HttpRequest) -> bool:
        """otel_django's own views, and the URLs excluded by the user."""
        urlconf = getattr(settings, "ROOT_URLCONF", None)
        own = self._own_paths.get(urlconf)
        if own is None:
            own = self._own_paths[urlconf] = _own_paths(urlconf)
        if request.path_info in own:
            return True
        if self._excluded is None:
            return False
        try:
            return self._excluded.url_disabled(request.build_absolute_uri("?"))
        except Exception:  # DisallowedHost: Django answers 400 itself
            return False

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        if self._not_traced(request):
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
        if self._not_traced(request):
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
    def _safe_start(self, request: HttpRequest) -> RequestState | None:
        try:
            return self._start(request)
        except Exception:
            _report_failure(self._reported, "starting")
            return None

    def _safe_finish(
        self, request: HttpRequest, response: HttpResponseBase | None, state: RequestState
    ) -> None:
        try:
            self._finish(request, response, state)
        except Exception:
            _report_failure(self._reported, "finishing")
            context_token, log_tokens, scope_token = state.tokens
            with contextlib.suppress(Exception):
                insight.end_request(scope_token)
            with contextlib.suppress(Exception):
                structlog.contextvars.reset_contextvars(**log_tokens)
            with contextlib.suppress(Exception):
                otel_context.detach(context_token)

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: Any
    ) -> None:
        """Safety net: a request that reached otel_django's views by a path ``reverse()`` does
        not give (a converter in the prefix, i18n patterns) is dropped from telemetry."""
        if self._own_views is None:
            self._own_views = _own_views()
        if view in self._own_views:
            state = request_state(request)
            if state is not None:
                state.untraced = True

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        if isinstance(exception, CLIENT_ERROR_EXCEPTIONS):
            return  # Django answers 4xx for them: as a returned 4xx, not an error
        state = request_state(request)
        if state is None:
            return
        state.error_type = error_type(exception)
        if state.span.is_recording():
            state.span.record_exception(
                exception,
                attributes=self._error_messages.span_attributes(exception),
                escaped=True,
            )
            state.span.set_attribute("error.type", state.error_type)

    def _start(self, request: HttpRequest) -> RequestState:
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
            if self._traced_request_attrs:
                span.set_attributes(
                    extract_attributes_from_object(request, self._traced_request_attrs)
                )
            if self._capture_request:
                span.set_attributes(
                    get_custom_header_attributes(
                        request.headers,
                        self._capture_request,
                        self._sanitize,
                        normalise_request_header_name,
                    )
                )
        active_attributes = {"http.request.method": method, "url.scheme": scheme}
        if self._metrics is not None:
            self._metrics.request_started(active_attributes)
        # Last, so that nothing stays bound to the thread if a step above fails.
        context_token = otel_context.attach(trace.set_span_in_context(span, parent))
        log_tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        scope_token = insight.begin_request(span, self._insight)
        state = RequestState(
            span,
            method,
            request_id,
            start,
            active_attributes,
            (context_token, log_tokens, scope_token),
        )
        attach(request, state)
        if self._request_hook is not None:
            _call_hook(self._reported, "request_hook", self._request_hook, span, request)
        return state

    def _finish(
        self, request: HttpRequest, response: HttpResponseBase | None, state: RequestState
    ) -> None:
        duration_ns = time.perf_counter_ns() - state.start
        span = state.span
        method = state.method
        if state.untraced:
            self._finish_untraced(response, state)
            return
        match = getattr(request, "resolver_match", None)
        route: str | None = match.route if match is not None else None
        status = response.status_code if response is not None else 500
        failure = state.error_type
        if failure is None and status >= 500:
            failure = str(status)
        if response is not None:
            response[self._request_id_header] = state.request_id
        response_size = _body_size(response)
        context_token, log_tokens, scope_token = state.tokens
        # Closed before the span ends: its N+1 events and query summary go on the span.
        scope = insight.end_request(scope_token)
        db_summary = scope.summary() if scope is not None else None
        if span.is_recording():
            final: dict[str, str | int | float] = {"http.response.status_code": status}
            if route:
                span.update_name(f"{'HTTP' if method == '_OTHER' else method} {route}")
                final["http.route"] = route
            if response_size is not None:
                final["http.response.body.size"] = response_size
            if failure is not None:
                final["error.type"] = failure
            if db_summary is not None:
                final.update(db_summary)
            spans.set_attributes(span, final)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            if self._capture_response and response is not None:
                span.set_attributes(
                    get_custom_header_attributes(
                        dict(response.items()),
                        self._capture_response,
                        self._sanitize,
                        normalise_response_header_name,
                    )
                )
        if self._response_hook is not None and response is not None:
            _call_hook(
                self._reported, "response_hook", self._response_hook, span, request, response
            )
        span.end()
        if self._metrics is not None:
            self._metrics.request_finished(
                state.active_attributes,
                (method, state.active_attributes["url.scheme"], status, route or None, failure),
                duration_ns / 1e9,
                _request_size(request),
                response_size,
                span.get_span_context(),
                scope.queries if scope is not None else None,
            )
        if self._access_log is not None:
            self._access_log.log(
                request, method, route, status, duration_ns / 1e6, response_size, db_summary
            )
        structlog.contextvars.reset_contextvars(**log_tokens)
        otel_context.detach(context_token)

    def _finish_untraced(self, response: HttpResponseBase | None, state: RequestState) -> None:
        """The span is never ended (so never exported); no request metrics, no access line."""
        if response is not None:
            response[self._request_id_header] = state.request_id
        context_token, log_tokens, scope_token = state.tokens
        insight.end_request(scope_token)
        if self._metrics is not None:
            self._metrics.request_not_counted(state.active_attributes)
        structlog.contextvars.reset_contextvars(**log_tokens)
        otel_context.detach(context_token)


def _own_paths(urlconf: object) -> frozenset[str]:
    """The paths (``request.path_info`` form) of otel_django's views in ``urlconf``."""
    from django.urls import NoReverseMatch, get_script_prefix, reverse

    prefix = get_script_prefix()
    paths = set()
    for name in OWN_URL_NAMES:
        try:
            path = reverse(name, urlconf=urlconf)  # type: ignore[arg-type]
        except NoReverseMatch:
            continue
        except Exception:  # a broken URLconf: Django reports it on the request itself
            return frozenset()
        paths.add("/" + path[len(prefix) :] if path.startswith(prefix) else path)
    return frozenset(paths)


def _own_views() -> frozenset[object]:
    from .health import views as health_views
    from .metrics import views as metrics_views

    return frozenset({metrics_views.metrics, health_views.healthz, health_views.readyz})


def _call_hook(reported: set[str], name: str, hook: Callable[..., Any], *args: Any) -> None:
    """Runs a user hook; the first failure of each is logged with its traceback."""
    try:
        hook(*args)
    except Exception:
        if name not in reported:
            reported.add(name)
            logging.getLogger("otel_django").exception(
                "otel_django: the %s raised; the request is unaffected (later failures of "
                "this hook are not logged)",
                name,
            )


def _report_failure(reported: set[str], stage: str) -> None:
    """Logs the first failure of each stage with its traceback; later ones are dropped."""
    if stage not in reported:
        reported.add(stage)
        logging.getLogger("otel_django").exception(
            "otel_django failed %s a request's telemetry; the request is unaffected", stage
        )


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
