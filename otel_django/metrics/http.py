"""HTTP server metrics, with the stable semantic-convention names and attributes."""

from __future__ import annotations

from opentelemetry.metrics import Meter
from opentelemetry.util.types import Attributes

# Bucket boundaries advised by the semantic conventions for http.server.request.duration.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
SIZE_BUCKETS = (0, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000)


class HttpServerMetrics:
    def __init__(self, meter: Meter) -> None:
        self.duration = meter.create_histogram(
            "http.server.request.duration",
            unit="s",
            description="Duration of HTTP server requests.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        self.active = meter.create_up_down_counter(
            "http.server.active_requests",
            unit="{request}",
            description="Number of active HTTP server requests.",
        )
        self.request_size = meter.create_histogram(
            "http.server.request.body.size",
            unit="By",
            description="Size of HTTP server request bodies.",
            explicit_bucket_boundaries_advisory=list(SIZE_BUCKETS),
        )
        self.response_size = meter.create_histogram(
            "http.server.response.body.size",
            unit="By",
            description="Size of HTTP server response bodies.",
            explicit_bucket_boundaries_advisory=list(SIZE_BUCKETS),
        )

    def request_started(self, attributes: Attributes) -> None:
        self.active.add(1, attributes)

    def request_finished(
        self,
        active_attributes: Attributes,
        attributes: Attributes,
        duration_s: float,
        request_size: int | None,
        response_size: int | None,
    ) -> None:
        self.active.add(-1, active_attributes)
        self.duration.record(duration_s, attributes)
        if request_size is not None:
            self.request_size.record(request_size, attributes)
        if response_size is not None:
            self.response_size.record(response_size, attributes)
