"""HTTP server metrics, with the stable semantic-convention names and attributes.

The histograms are recorded through ``instruments.Histogram``: aggregated in place, off the
SDK's per-measurement path. The request duration and the queries per request carry exemplars
from the request's server span.

``http.server.active_requests`` is an observable up-down counter over a plain in-process
count: two SDK measurements per request fewer than a synchronous up-down counter, and the
same series. The count is the process's (``Runtime.lifecycle.active_requests``), shared by
every middleware instance.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.trace import SpanContext
from opentelemetry.util.types import Attributes

from .aggregate import AttributeValues, HistogramSpec
from .instruments import Histogram, PipelineSource

# Bucket boundaries advised by the semantic conventions for http.server.request.duration.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
SIZE_BUCKETS = (0, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000)
QUERY_BUCKETS = (0, 1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000)


class ActiveRequests:
    """In-flight requests per attribute set, observed by ``http.server.active_requests``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[tuple[str, object], ...], int] = {}
        self._meters: list[Meter] = []

    def register(self, meter: Meter) -> None:
        with self._lock:
            if any(m is meter for m in self._meters):
                return
            self._meters.append(meter)
        meter.create_observable_up_down_counter(
            "http.server.active_requests",
            callbacks=[self.observe],
            unit="{request}",
            description="Number of active HTTP server requests.",
        )

    def add(self, attributes: Attributes, amount: int) -> None:
        key = tuple(attributes.items()) if attributes else ()
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + amount

    def observe(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            items = list(self._counts.items())
        return [Observation(count, dict(key)) for key, count in items]  # type: ignore[arg-type]


HTTP_ATTRIBUTES = (
    "http.request.method",
    "url.scheme",
    "http.response.status_code",
    "http.route",
    "error.type",
)
DURATION = HistogramSpec(
    "http.server.request.duration",
    "s",
    "Duration of HTTP server requests.",
    DURATION_BUCKETS,
    HTTP_ATTRIBUTES,
)
REQUEST_SIZE = HistogramSpec(
    "http.server.request.body.size",
    "By",
    "Size of HTTP server request bodies.",
    SIZE_BUCKETS,
    HTTP_ATTRIBUTES,
)
RESPONSE_SIZE = HistogramSpec(
    "http.server.response.body.size",
    "By",
    "Size of HTTP server response bodies.",
    SIZE_BUCKETS,
    HTTP_ATTRIBUTES,
)

# otel_django's own: how many queries (Django ORM, raw cursors, SQLAlchemy) one request ran.
QUERIES_PER_REQUEST = HistogramSpec(
    "otel_django.db.queries_per_request",
    "{query}",
    "Database queries run by one HTTP request.",
    QUERY_BUCKETS,
    ("http.request.method", "http.route"),
)


class HttpServerMetrics:
    """Records a request's measurements; attribute values in ``HTTP_ATTRIBUTES`` order."""

    def __init__(
        self,
        meter: Meter,
        scope: str,
        source: PipelineSource,
        active: ActiveRequests | None = None,
    ) -> None:
        """``source``: where the histograms find the pipeline; ``active``: the count of
        in-flight requests (default: one of its own)."""
        self._active = active = active or ActiveRequests()
        active.register(meter)
        self.duration = Histogram(DURATION, scope, source)
        self.request_size = Histogram(REQUEST_SIZE, scope, source)
        self.response_size = Histogram(RESPONSE_SIZE, scope, source)
        self.queries = Histogram(QUERIES_PER_REQUEST, scope, source)

    def request_started(self, attributes: Attributes) -> None:
        self._active.add(attributes, 1)

    def request_not_counted(self, active_attributes: Attributes) -> None:
        """A request dropped from telemetry after it started (otel_django's own views)."""
        self._active.add(active_attributes, -1)

    def request_finished(
        self,
        active_attributes: Attributes,
        values: AttributeValues,
        duration_s: float,
        request_size: int | None,
        response_size: int | None,
        span_context: SpanContext | None = None,
        queries: int | None = None,
    ) -> None:
        """``span_context``: the server span's, for exemplars; ``queries``: how many database
        queries the request ran (``None``: not known, nothing recorded)."""
        self._active.add(active_attributes, -1)
        self.duration.record(duration_s, values, span_context)
        if request_size is not None:
            self.request_size.record(request_size, values)
        if response_size is not None:
            self.response_size.record(response_size, values)
        if queries is not None:
            self.queries.record(queries, (values[0], values[3]), span_context)
