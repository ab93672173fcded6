"""The demo as a real gunicorn server: every line of its stdout is one JSON object.

Requests cover the structlog and stdlib loggers of the app, Django's own loggers, an exception,
a 404 with a non-ASCII path, hostile request ids and a canary secret in a query parameter, an
``Authorization`` header and a cookie. gunicorn's master keeps its own lines on stderr.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.support.lines import parse_lines
from tests.support.otlp_receiver import OTLPReceiver
from tests.support.servers import copy_database, demo_env, gunicorn
from tests.support.services import free_port

pytestmark = [pytest.mark.slow, pytest.mark.smoke]

CANARY = "CANARY-gunicorn-91d2"
NEW_ID = re.compile(r"^[0-9a-f]{32}$")


def test_gunicorn_stdout_is_one_json_object_per_line(
    seeded: Path, tmp_path: Path, otlp_receiver: OTLPReceiver
) -> None:
    env = demo_env(
        copy_database(seeded, tmp_path),
        OTEL_DJANGO_LOG_LEVEL="info",
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
        OTEL_LOGS_EXPORTER="otlp",
        OTEL_BSP_SCHEDULE_DELAY="200",
        OTEL_BLRP_SCHEDULE_DELAY="200",
    )
    server = gunicorn(free_port(), env, tmp_path / "logs", workers=1)
    responses: dict[str, tuple[int, dict[str, str]]] = {}
    try:
        server.wait_ready()
        for name, path, headers in [
            ("products", "/products/", {"X-Request-ID": "gunicorn-products"}),
            (
                "detail",
                f"/products/1/?password={CANARY}&q=shoes",
                {
                    "X-Request-ID": "gunicorn-detail",
                    "Authorization": f"Bearer {CANARY}",
                    "Cookie": f"sessionid={CANARY}; csrftoken={CANARY}",
                },
            ),
            ("boom", "/boom/", {"X-Request-ID": "gunicorn-boom"}),
            ("unicode-404", "/caf%C3%A9/%E2%9C%93/", {"X-Request-ID": "gunicorn-404"}),
            ("n-plus-one", "/n-plus-one/", {"X-Request-ID": "gunicorn-n-plus-one"}),
            ("long-id", "/products/", {"X-Request-ID": "x" * 5000}),
            ("latin-1-id", "/products/", {"X-Request-ID": "caf\u00e9"}),
        ]:
            status, response_headers, _ = server.get(path, headers)
            responses[name] = (status, response_headers)
    finally:
        server.stop()
    stdout = server.stdout()
    lines = parse_lines(stdout)  # fails on the first line that is not one JSON object
    assert CANARY not in stdout and CANARY not in server.stderr()
    assert "x" * 200 not in stdout
    assert {status for status, _ in responses.values()} == {200, 404, 500}

    for line in lines:
        assert {"timestamp", "level", "event", "service.name"} <= set(line), line
        assert line["service.name"] == "demo-shop"
    by_request: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in lines:
        if "request_id" in line:
            by_request[line["request_id"]].append(line)
    for name, (_, headers) in responses.items():
        request_lines = by_request[headers["X-Request-ID"]]
        access = [line for line in request_lines if line.get("logger") == "otel_django.access"]
        assert len(access) == 1, name
        assert len({line["trace_id"] for line in request_lines}) == 1, name

    assert NEW_ID.match(responses["long-id"][1]["X-Request-ID"])
    assert NEW_ID.match(responses["latin-1-id"][1]["X-Request-ID"])
    assert [line["event"] for line in by_request["gunicorn-products"]] == [
        "products listed",
        "request",
    ]
    boom = by_request["gunicorn-boom"]
    assert [line["event"] for line in boom] == [
        "about to fail",
        "Internal Server Error: /boom/",
        "request",
    ]
    assert boom[1]["exception"][0]["exc_type"] == "RuntimeError"
    assert boom[1]["exception"][0]["frames"][-1]["name"] == "boom"
    (detail,) = by_request["gunicorn-detail"]
    assert detail["url.query"] == "password=[REDACTED]&q=shoes"
    # Django logs 4xx after the middleware returned: the line still has the request's ids.
    (access_404, not_found) = by_request["gunicorn-404"]
    assert not_found["logger"] == "django.request" and not_found["level"] == "warning"
    assert access_404["url.path"] == "/caf\u00e9/\u2713/" and access_404["http.route"] is None
    assert any(line.get("logger") == "otel_django.db" for line in by_request["gunicorn-n-plus-one"])
    check_documented_jq_queries(server.stdout_path, boom)

    # The same lines went over OTLP (each once, none printed twice), and so did the spans:
    # neither carries the canary.
    assert otlp_receiver.wait_for(
        lambda r: (
            {x.attributes.get("otel_django.request_id") for x in r.logs}
            >= {"gunicorn-boom", "gunicorn-detail"}
            and len(r.spans) > 0
        )
    )
    exported = [
        r
        for r in otlp_receiver.logs
        if r.attributes.get("otel_django.request_id") == "gunicorn-boom"
    ]
    assert sorted(r.body for r in exported) == sorted(line["event"] for line in boom)
    assert all(r.trace_id == boom[0]["trace_id"] for r in exported)
    assert not any(CANARY.encode() in body for body in otlp_receiver.raw_bodies)


def check_documented_jq_queries(log: Path, boom: list[dict[str, Any]]) -> None:
    """The jq commands of docs/logging.md, run on the server's real output."""
    if shutil.which("jq") is None:
        return

    def jq(*args: str) -> str:
        return subprocess.run(
            ["jq", *args, str(log)], capture_output=True, text=True, check=True, timeout=30
        ).stdout

    by_request = jq("-c", 'select(.request_id == "gunicorn-boom")')
    assert [json.loads(line) for line in by_request.splitlines()] == boom
    by_trace = jq("-c", f'select(.trace_id == "{boom[0]["trace_id"]}")')
    assert len(by_trace.splitlines()) == 3
    assert jq("-R", "-r", ". as $line | try (fromjson | empty) catch $line") == ""
