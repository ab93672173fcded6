"""The OTLP/HTTP receiver the benchmarks export to, in a process of its own.

    python -m benchmarks.otlp_sink      # prints "listening http://127.0.0.1:PORT", then serves

It stands in for a Collector: it accepts ``POST /v1/traces``, ``/v1/metrics`` and ``/v1/logs``
with protobuf bodies (gzip or deflate too), decodes each one with ``opentelemetry-proto``
(a body that does not decode is answered 400, so a broken encoder fails the benchmark) and
counts spans per ``service.name``. ``GET /stats`` answers the counts as JSON::

    {"<service.name>": {"spans": N, "requests": N, "bytes": N}, ...}

Living in another process, its decoding work is not counted in the workers' figures, as a
Collector's is not in an application's.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import subprocess
import sys
import threading
import urllib.request
import zlib
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2


def _service_name(resource: Any) -> str:
    for kv in resource.attributes:
        if kv.key == "service.name":
            return str(kv.value.string_value)
    return "unknown"


class Counts:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_service: dict[str, dict[str, int]] = defaultdict(
            lambda: {"spans": 0, "requests": 0, "bytes": 0}
        )

    def traces(self, body: bytes) -> None:
        request = trace_service_pb2.ExportTraceServiceRequest()
        request.ParseFromString(body)
        with self._lock:
            for resource_spans in request.resource_spans:
                counts = self.by_service[_service_name(resource_spans.resource)]
                counts["requests"] += 1
                counts["bytes"] += len(body)
                counts["spans"] += sum(len(s.spans) for s in resource_spans.scope_spans)

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {name: dict(counts) for name, counts in self.by_service.items()}


def _decoded(headers: Any, body: bytes) -> bytes:
    encoding = headers.get("Content-Encoding", "")
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body


def make_server(counts: Counts, port: int = 0) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: exporters reuse their connection

        def do_POST(self) -> None:
            body = _decoded(self.headers, self.rfile.read(int(self.headers["Content-Length"])))
            try:
                if self.path == "/v1/traces":
                    counts.traces(body)
                elif self.path == "/v1/metrics":
                    metrics_service_pb2.ExportMetricsServiceRequest().ParseFromString(body)
                elif self.path == "/v1/logs":
                    logs_service_pb2.ExportLogsServiceRequest().ParseFromString(body)
                else:
                    raise ValueError(f"unexpected path {self.path}")
            except Exception as exc:
                self._answer(400, str(exc).encode(), "text/plain")
                return
            self._answer(200, b"", "application/x-protobuf")

        def do_GET(self) -> None:
            if self.path != "/stats":
                self._answer(404, b"", "text/plain")
                return
            self._answer(200, json.dumps(counts.snapshot()).encode(), "application/json")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


class Sink:
    """The parent's handle on a sink process: ``with Sink() as sink: sink.endpoint``."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self.endpoint = ""

    def __enter__(self) -> Sink:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.otlp_sink"],
            cwd=Path(__file__).resolve().parent.parent,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline().strip()
        if not line.startswith("listening "):
            self.__exit__()
            raise RuntimeError(f"the OTLP sink did not start: {line!r}")
        self.endpoint = line.split(" ", 1)[1]
        return self

    def stats(self) -> dict[str, dict[str, int]]:
        with urllib.request.urlopen(self.endpoint + "/stats", timeout=30) as response:
            result: dict[str, dict[str, int]] = json.loads(response.read())
        return result

    def spans(self, service: str) -> int:
        return self.stats().get(service, {}).get("spans", 0)

    def __exit__(self, *exc: object) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process is not None and self._process.stdout is not None:
            self._process.stdout.close()


def main() -> int:
    server = make_server(Counts())
    host, port = server.server_address[:2]
    print(f"listening http://{host!s}:{port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
