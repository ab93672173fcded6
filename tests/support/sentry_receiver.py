"""A Sentry receiver for the tests: it takes the envelopes sentry-sdk's real HTTP transport sends.

A server subprocess gets ``SENTRY_DSN=receiver.dsn``; sentry-sdk then posts its envelopes
(``POST /api/<project>/envelope/``, gzip) here, and the test reads the events back, parsed
by sentry-sdk's own envelope code.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sentry_sdk.envelope import Envelope


class SentryReceiver:
    def __init__(self) -> None:
        self.raw_bodies: list[bytes] = []  # decompressed
        self.events: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                status = 200 if self.path.endswith("/envelope/") else 404
                if status == 200:
                    receiver._receive(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def dsn(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://public@{host}:{port}/1"

    def start(self) -> SentryReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _receive(self, body: bytes) -> None:
        event = Envelope.deserialize(body).get_event()
        with self._cond:
            self.raw_bodies.append(body)
            if event is not None:
                self.events.append(event)
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[SentryReceiver], bool], timeout: float = 15.0) -> bool:
        """Waits until ``predicate(self)`` holds; returns whether it did."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True
