"""OTLP receivers for the tests: they decode the real protobuf the exporters send.

They stand in for the Collector, which cannot run here, and speak the same protocols:
:class:`OTLPReceiver` is OTLP/HTTP (``POST /v1/traces``, ``/v1/logs``, ``/v1/metrics``, or
custom paths, protobuf bodies, optional gzip); :class:`OTLPGrpcReceiver` is OTLP/gRPC, with
grpcio serving the real ``TraceService``, ``MetricsService`` and ``LogsService`` of
opentelemetry-proto. Both record the request headers (metadata) they received.
"""

from __future__ import annotations

import dataclasses
import gzip
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

SPAN_KINDS = {
    0: "UNSPECIFIED",
    1: "INTERNAL",
    2: "SERVER",
    3: "CLIENT",
    4: "PRODUCER",
    5: "CONSUMER",
}


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    return getattr(value, kind)


def attributes(kvs: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in kvs}


@dataclasses.dataclass
class ReceivedSpan:
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    status_code: int
    start_ns: int
    end_ns: int
    scope: str


@dataclasses.dataclass
class ReceivedPoint:
    """One data point of a received metric (histogram: count, sum, bucket counts)."""

    name: str
    unit: str
    kind: str  # "sum", "gauge", "histogram"
    attributes: dict[str, Any]
    resource: dict[str, Any]
    value: float | None = None
    count: int | None = None
    sum: float | None = None
    bucket_counts: list[int] | None = None
    temporality: int = 0  # 1 delta, 2 cumulative
    monotonic: bool = False
    has_min: bool = False


@dataclasses.dataclass
class ReceivedLog:
    body: Any
    severity: str
    trace_id: str
    span_id: str
    attributes: dict[str, Any]
    resource: dict[str, Any]


DEFAULT_PATHS = {"/v1/traces": "traces", "/v1/logs": "logs", "/v1/metrics": "metrics"}


class OTLPReceiver:
    """OTLP/HTTP. ``paths`` maps request paths to signals (default: the ``/v1/...`` ones)."""

    def __init__(self, paths: dict[str, str] | None = None, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s  # answer this late (an exporter's timeout, in the tests)
        self.exports: list[tuple[str, dict[str, str], bytes]] = []  # path, headers, body
        self.spans: list[ReceivedSpan] = []
        self.logs: list[ReceivedLog] = []
        self.metric_requests: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        self.raw_bodies: list[bytes] = []
        self.request_headers: list[dict[str, str]] = []  # lowercased names
        self.paths_seen: list[str] = []
        self.requests = 0  # every POST, to any path
        self.paths = dict(DEFAULT_PATHS if paths is None else paths)
        self._cond = threading.Condition()
        self._start_http()

    def _start_http(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                headers = {k.lower(): v for k, v in self.headers.items()}
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                signal = receiver.paths.get(self.path)
                with receiver._cond:
                    receiver.requests += 1
                if signal is None:
                    with receiver._cond:
                        receiver.paths_seen.append(self.path)
                    self.send_response(404)
                    self.end_headers()
                    return
                try:
                    receiver._receive(signal, body, headers, self.path)
                except Exception as exc:  # the test will see nothing arrive
                    self.send_response(400)
                    self.end_headers()
                    self.wfile.write(str(exc).encode())
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> OTLPReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _receive(self, signal: str, body: bytes, headers: dict[str, str], path: str) -> None:
        with self._cond:
            self.raw_bodies.append(body)
            self.request_headers.append(headers)
            self.paths_seen.append(path)
            self.exports.append((path, headers, body))
            if signal == "traces":
                self._receive_traces(body)
            elif signal == "logs":
                self._receive_logs(body)
            elif signal == "metrics":
                request = metrics_service_pb2.ExportMetricsServiceRequest()
                request.ParseFromString(body)
                self.metric_requests.append(request)
            else:
                raise ValueError(f"unexpected signal {signal}")
            self._cond.notify_all()

    def metric_points(self, name: str | None = None) -> list[ReceivedPoint]:
        """Every data point received, of the metric ``name`` or of all, in arrival order."""
        with self._cond:
            requests = list(self.metric_requests)
        points: list[ReceivedPoint] = []
        for request in requests:
            for resource_metrics in request.resource_metrics:
                resource = attributes(resource_metrics.resource.attributes)
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        if name is not None and metric.name != name:
                            continue
                        points.extend(_points(metric, resource))
        return points

    def metric_names(self) -> set[str]:
        return {p.name for p in self.metric_points()}

    def spans_per_export(self, path: str) -> list[int]:
        """How many spans each export request to ``path`` carried."""
        with self._cond:
            bodies = [body for p, _, body in self.exports if p == path]
        counts = []
        for body in bodies:
            request = trace_service_pb2.ExportTraceServiceRequest()
            request.ParseFromString(body)
            counts.append(
                sum(len(s.spans) for rs in request.resource_spans for s in rs.scope_spans)
            )
        return counts

    def _receive_traces(self, body: bytes) -> None:
        request = trace_service_pb2.ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource_spans in request.resource_spans:
            resource = attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        ReceivedSpan(
                            name=span.name,
                            kind=SPAN_KINDS[span.kind],
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            attributes=attributes(span.attributes),
                            resource=resource,
                            events=[(e.name, attributes(e.attributes)) for e in span.events],
                            status_code=span.status.code,
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                            scope=scope_spans.scope.name,
                        )
                    )

    def _receive_logs(self, body: bytes) -> None:
        request = logs_service_pb2.ExportLogsServiceRequest()
        request.ParseFromString(body)
        for resource_logs in request.resource_logs:
            resource = attributes(resource_logs.resource.attributes)
            for scope_logs in resource_logs.scope_logs:
                for record in scope_logs.log_records:
                    self.logs.append(
                        ReceivedLog(
                            body=any_value(record.body),
                            severity=record.severity_text,
                            trace_id=record.trace_id.hex(),
                            span_id=record.span_id.hex(),
                            attributes=attributes(record.attributes),
                            resource=resource,
                        )
                    )

    def wait_for(self, predicate: Callable[[OTLPReceiver], bool], timeout: float = 15.0) -> bool:
        """Waits until ``predicate(self)`` holds; returns whether it did."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def spans_named(self, name: str) -> list[ReceivedSpan]:
        with self._cond:
            return [s for s in self.spans if s.name == name]

    def spans_of_kind(self, kind: str) -> list[ReceivedSpan]:
        with self._cond:
            return [s for s in self.spans if s.kind == kind]

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self._cond:
            return [s for s in self.spans if s.trace_id == trace_id]

    def clear(self) -> None:
        with self._cond:
            self.spans.clear()
            self.logs.clear()
            self.metric_requests.clear()
            self.raw_bodies.clear()
            self.exports.clear()


def _points(metric: Any, resource: dict[str, Any]) -> list[ReceivedPoint]:
    kind = metric.WhichOneof("data")
    data = getattr(metric, kind)
    points = []
    for point in data.data_points:
        common = {
            "name": metric.name,
            "unit": metric.unit,
            "kind": kind,
            "attributes": attributes(point.attributes),
            "resource": resource,
            "temporality": getattr(data, "aggregation_temporality", 0),
            "monotonic": bool(getattr(data, "is_monotonic", False)),
        }
        if kind == "histogram":
            points.append(
                ReceivedPoint(
                    **common,
                    count=point.count,
                    sum=point.sum,
                    bucket_counts=list(point.bucket_counts),
                    has_min=point.HasField("min"),
                )
            )
        elif kind in ("sum", "gauge"):
            value = point.as_double if point.WhichOneof("value") == "as_double" else point.as_int
            points.append(ReceivedPoint(**common, value=value))
    return points


class OTLPGrpcReceiver(OTLPReceiver):
    """OTLP/gRPC: the real collector services of opentelemetry-proto, served by grpcio."""

    def __init__(self) -> None:
        super().__init__()

    def _start_http(self) -> None:
        import concurrent.futures

        import grpc
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

        receiver = self

        def metadata(context: Any) -> dict[str, str]:
            return {k.lower(): v for k, v in context.invocation_metadata()}

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: Any) -> Any:
                receiver._receive(
                    "traces", request.SerializeToString(), metadata(context), "grpc:traces"
                )
                return trace_service_pb2.ExportTraceServiceResponse()

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: Any) -> Any:
                receiver._receive(
                    "metrics", request.SerializeToString(), metadata(context), "grpc:metrics"
                )
                return metrics_service_pb2.ExportMetricsServiceResponse()

        class Logs(logs_service_pb2_grpc.LogsServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: Any) -> Any:
                receiver._receive(
                    "logs", request.SerializeToString(), metadata(context), "grpc:logs"
                )
                return logs_service_pb2.ExportLogsServiceResponse()

        self._grpc = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), self._grpc)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), self._grpc)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Logs(), self._grpc)
        self._port = self._grpc.add_insecure_port("127.0.0.1:0")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> OTLPGrpcReceiver:
        self._grpc.start()
        return self

    def stop(self) -> None:
        self._grpc.stop(grace=None)


__all__ = [
    "KeyValue",
    "OTLPGrpcReceiver",
    "OTLPReceiver",
    "ReceivedLog",
    "ReceivedPoint",
    "ReceivedSpan",
]
