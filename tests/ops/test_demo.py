"""The demo's tour, as `make demo` runs it: spans printed, logs as JSON, metrics served."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.servers import DEMO, copy_database, demo_env
from tests.support.services import free_port

pytestmark = pytest.mark.slow


def test_demo_tour_shows_traces_logs_and_metrics(seeded: Path, tmp_path: Path) -> None:
    database = copy_database(seeded, tmp_path)
    env = demo_env(
        database, OTEL_TRACES_EXPORTER="console", OTEL_DJANGO_METRICS_PASSWORD="tour-password"
    )
    env.pop("OTEL_DJANGO_LOG_LEVEL")
    result = subprocess.run(
        [sys.executable, "manage.py", "rundemo", "--tour-only", "--port", str(free_port())],
        cwd=DEMO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for route in ("products/", "products/<int:pk>/", "n-plus-one/", "slow/", "boom/"):
        assert f"  GET {route} [server]" in result.stderr
    assert "* n_plus_one" in result.stderr
    assert "--- GET /metrics (basic auth): 200, 9 request-count series" in result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    access = [line for line in lines if line["logger"] == "otel_django.access"]
    assert {line["http.route"] for line in access} >= {"products/", "boom/", "n-plus-one/"}
    assert all(len(line["trace_id"]) == 32 for line in access)


def test_the_demo_refuses_a_busy_port(seeded: Path, tmp_path: Path) -> None:
    env = demo_env(copy_database(seeded, tmp_path), OTEL_TRACES_EXPORTER="none")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        holder.setblocking(False)
        port = holder.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "manage.py", "rundemo", "--tour-only", "--port", str(port)],
            cwd=DEMO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        with pytest.raises(BlockingIOError):
            holder.accept()  # the tour never ran against whatever holds the port
    assert result.returncode != 0
    assert result.stderr.splitlines() == [
        f"CommandError: cannot serve the demo on 127.0.0.1:{port}: Address already in use. "
        "Stop what holds the port, or choose another with --port or DEMO_PORT."
    ]
    assert "--- GET" not in result.stdout + result.stderr


def test_runserver_request_lines_are_json_too(seeded: Path, tmp_path: Path) -> None:
    # runserver imports wsgi.py, which calls django.setup() a second time and re-applies
    # settings.LOGGING: the pipeline must survive it.
    from tests.support.servers import runserver

    env = demo_env(copy_database(seeded, tmp_path), OTEL_TRACES_EXPORTER="none")
    env.pop("OTEL_DJANGO_LOG_LEVEL")
    server = runserver(free_port(), env, tmp_path / "logs")
    try:
        server.wait_ready("/products/")
        server.get("/products/?page=2")
        server.wait_for_stdout("GET /products/?page=2")  # runserver logs after responding
    finally:
        server.stop()
    assert '"GET /products/' not in server.stderr()
    # runserver's own banner (a command's output, not a log line) is plain text.
    lines = [json.loads(line) for line in server.stdout().splitlines() if line.startswith("{")]
    served = [line for line in lines if line["logger"] == "django.server"]
    assert any("GET /products/?page=2" in line["event"] for line in served), lines[-5:]
