"""Serves the demo shop and takes it on a short tour, so its telemetry shows at once."""

from __future__ import annotations

import base64
import contextlib
import os
import socketserver
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.servers.basehttp import (
    WSGIRequestHandler,
    WSGIServer,
    get_internal_wsgi_application,
)

TOUR = (
    ("/products/", "a list view: one ORM query"),
    ("/products/3/", "a detail view with select_related"),
    ("/n-plus-one/", "an N+1 loop: an n_plus_one event on the request span"),
    ("/slow/", "a slow query: marked slow, with its code location"),
    ("/cached/", "the cache, twice: a miss then a hit"),
    ("/cached/", ""),
    ("/sqlalchemy/", "a SQLAlchemy engine query"),
    ("/redis/", "Redis (when REDIS_URL is set)"),
    ("/async/", "an async view"),
    ("/boom/", "a view that raises: the span is an error, the log line has the exception"),
)


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    """runserver's threaded server, as ``django.core.servers.basehttp.run`` builds it."""

    daemon_threads = True


class Command(BaseCommand):
    help = "Runs the demo server on 127.0.0.1 and sends it a tour of requests."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT", "8000")))
        parser.add_argument("--tour-only", action="store_true", help="exit after the tour")

    def handle(self, *args: Any, **options: Any) -> None:
        port = options["port"]
        # Bound here, before the tour: a port another process holds fails now, with one line,
        # instead of the tour running against whatever answers there.
        try:
            httpd = _ThreadingWSGIServer(("127.0.0.1", port), WSGIRequestHandler)
        except OSError as exc:
            raise CommandError(
                f"cannot serve the demo on 127.0.0.1:{port}: {exc.strerror or exc}. "
                "Stop what holds the port, or choose another with --port or DEMO_PORT."
            ) from None
        httpd.set_app(get_internal_wsgi_application())
        server = threading.Thread(target=httpd.serve_forever, daemon=True)
        server.start()
        base = f"http://127.0.0.1:{port}"
        self._wait_until_up(base)
        for path, what in TOUR:
            if what:
                self.stderr.write(f"\n--- GET {path}  ({what})")
            self._get(base + path)
            time.sleep(0.05)
        password = os.environ.get("OTEL_DJANGO_METRICS_PASSWORD", "demo-metrics-password")
        status, body = self._get(base + "/metrics", auth=("metrics", password))
        series = [
            line
            for line in body.splitlines()
            if line.startswith("http_server_request_duration_seconds_count")
        ]
        self.stderr.write(
            f"\n--- GET /metrics (basic auth): {status}, {len(series)} request-count series:"
        )
        for line in series:
            self.stderr.write("    " + line)
        if options["tour_only"]:
            return
        self.stderr.write(
            f"\nThe demo shop is serving on {base}/products/ — try the paths above, "
            f"`curl -u metrics:{password} {base}/metrics`, {base}/readyz. Ctrl-C stops it."
        )
        with contextlib.suppress(KeyboardInterrupt):
            server.join()

    def _wait_until_up(self, base: str) -> None:
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1).close()
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.05)
        raise CommandError(f"the demo server does not answer on {base}")

    def _get(self, url: str, auth: tuple[str, str] | None = None) -> tuple[int, str]:
        request = urllib.request.Request(url)
        if auth:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")
