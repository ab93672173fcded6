"""Every common server, started as its documentation says, serving the demo with otel_django.

One test body, one server process per case (:data:`tests.support.servers.SERVER_CASES`:
gunicorn sync and gthread with and without ``--preload`` and the shipped hooks, gunicorn with
``uvicorn-worker``, ``uvicorn --workers``, granian WSGI and ASGI, uWSGI with and without
``--lazy-apps``, runserver). For each it proves:

* spans come from every worker, each worker with its own ``service.instance.id``;
* every scrape, whichever worker answers it, reports
  ``sum(http_server_request_duration_seconds_count)`` equal to the requests sent;
* SIGTERM loses no span: the span processor's schedule delay is longer than the test, so every
  span reaches the OTLP receiver only through the flush at shutdown;
* no error line, from start to exit, on stdout or stderr;
* the server's access lines: left out in favour of ``otel_django.access`` (one line per
  request, with ``request_id`` and ``trace_id``), or with ``ACCESS_LOG=false`` printed with
  sensitive query values redacted, without uvicorn's ``color_message`` or ANSI codes; the
  secret in the query string appears nowhere.
"""

from __future__ import annotations

import concurrent.futures
import json
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support import servers
from tests.support.auth import authorization
from tests.support.metrics import total
from tests.support.otlp_receiver import OTLPReceiver
from tests.support.services import free_port
from tests.support.spans import server_spans

pytestmark = pytest.mark.slow

PASSWORD = "servers-test-password"
AUTH = authorization(PASSWORD)
CANARY = "CANARY-servers-7f3a"
REQUEST_PATH = f"/pid/?sleep=0.05&token={CANARY}&page=2"
COUNT = "http_server_request_duration_seconds_count"
SCRAPES = 8
# Plain-text lines (a server's own, not rendered by otel_django) that report an error.
PLAIN_ERROR = re.compile(r"Traceback|\bERROR\b|\[ERROR\]|CRITICAL|Exception", re.IGNORECASE)


def _case_param(case: servers.ServerCase) -> Any:
    marks = [pytest.mark.smoke] if case.smoke else []
    return pytest.param(case, id=case.id, marks=marks)


def send_until_every_worker_served(server: servers.Server, workers: int) -> tuple[int, set[int]]:
    """Rounds of concurrent requests until ``workers`` distinct processes have answered."""
    sent = 0
    pids: set[int] = set()
    deadline = time.monotonic() + 90
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        while time.monotonic() < deadline and sent < 400:
            responses = list(pool.map(lambda _: server.get(REQUEST_PATH), range(8)))
            sent += len(responses)
            for status, _, body in responses:
                assert status == 200, body[:300]
                pids.add(int(body))
            if len(pids) >= workers and sent >= 24:
                break
    return sent, pids


def scraped_total(server: servers.Server) -> float:
    status, _, body = server.get("/metrics", headers=AUTH)
    assert status == 200, body[:300]
    return total(body.decode(), COUNT)


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))  # a broken JSON line fails here
    return lines


@pytest.mark.parametrize("case", [_case_param(c) for c in servers.SERVER_CASES])
def test_server(
    case: servers.ServerCase, seeded: Path, tmp_path: Path, otlp_receiver: OTLPReceiver
) -> None:
    env = servers.demo_env(
        servers.copy_database(seeded, tmp_path),
        DJANGO_SETTINGS_MODULE="tests.servers.server_settings",
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="600000",  # nothing is exported before the shutdown flush
        OTEL_DJANGO_METRICS_PASSWORD=PASSWORD,
        OTEL_DJANGO_LOG_LEVEL="info",
        OTEL_DJANGO_ACCESS_LOG="false" if case.keep_access_lines else "true",
        **case.env,
    )
    port = free_port()
    server = servers.Server(case.command(port), env, port, tmp_path / "logs")
    try:
        server.wait_ready("/healthz", timeout=120)
        sent, pids = send_until_every_worker_served(server, case.workers)
        assert len(pids) == case.workers, f"{len(pids)} of {case.workers} workers served"
        seen = [scraped_total(server) for _ in range(SCRAPES)]
        assert seen == [sent] * SCRAPES, seen
    finally:
        server.stop(signal.SIGTERM, timeout=60)
    stdout, stderr = server.stdout(), server.stderr()
    context = f"\n--- stderr:\n{stderr[-3000:]}\n--- stdout:\n{stdout[-3000:]}"

    # SIGTERM lost no span, and every worker sent its own.
    assert otlp_receiver.wait_for(lambda r: len(server_spans(r)) >= sent, timeout=30), context
    spans = server_spans(otlp_receiver)
    assert len(spans) == sent, context
    assert {s.name for s in spans} == {"GET pid/"}
    assert {int(s.resource["process.pid"]) for s in spans} == pids
    assert len({s.resource["service.instance.id"] for s in spans}) == case.workers

    # No error line from start to exit. (Under uWSGI, Python's stdout is uWSGI's log, stderr.)
    lines = json_lines(stdout) + json_lines(stderr)
    for line in lines:
        assert line["level"] not in {"error", "critical"}, line
        if line["level"] == "warning" and line["logger"].startswith(("otel_django", "opentel")):
            assert line["event"].startswith(case.expected_warnings), line
    plain = [line for line in (stdout + stderr).splitlines() if not line.startswith("{")]
    assert not [line for line in plain if PLAIN_ERROR.search(line)], context
    for expected in case.expected_warnings:
        assert any(line["event"].startswith(expected) for line in lines), expected

    # Server access lines: otel_django's instead, or the server's, redacted and clean.
    assert CANARY not in stdout and CANARY not in stderr
    assert "\x1b" not in stdout and "\\u001b" not in stdout and "color_message" not in stdout
    ours = [line for line in lines if line["logger"] == "otel_django.access"]
    theirs = [line for line in lines if line["logger"] == case.access_logger]
    if case.keep_access_lines:
        assert not ours
        requests = [line for line in theirs if "/pid/" in line["event"]]
        assert len(requests) == sent
        for line in requests:
            assert "token=[REDACTED]" in line["event"] and "page=2" in line["event"], line
    else:
        assert not theirs, theirs[:3]
        assert len(ours) == sent
        for line in ours:
            assert line["url.query"] == "sleep=0.05&token=[REDACTED]&page=2", line
            assert len(line["request_id"]) == 32 and len(line["trace_id"]) == 32, line
        assert {line["trace_id"] for line in ours} == {s.trace_id for s in spans}
