"""Shared fixtures: real services (PostgreSQL, Redis), an OTLP receiver, captured spans.

A test that needs a service skips with the reason when the service is down, except under
CI (``CI=true``), where a missing service is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.otlp_receiver import OTLPReceiver

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_HOST = os.environ.get("OTEL_DJANGO_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("OTEL_DJANGO_TEST_PG_PORT", "5432"))
REDIS_DB = int(os.environ.get("OTEL_DJANGO_TEST_REDIS_DB", "0"))
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_service(name: str, host: str, port: int) -> None:
    if port_open(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if IN_CI:
        pytest.fail(f"{message}; CI must provide it")
    pytest.skip(message)


def prometheus_tool(name: str) -> str:
    """Path of Debian's ``prometheus`` or ``promtool``; skips locally, fails under CI if absent."""
    path = shutil.which(name) or f"/usr/bin/{name}"
    if os.access(path, os.X_OK):
        return path
    message = f"{name} is not installed (apt-get install -y prometheus)"
    if IN_CI:
        pytest.fail(f"{message}; CI must provide it")
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    require_service("PostgreSQL", PG_HOST, PG_PORT)
    return f"postgres://postgres@{PG_HOST}:{PG_PORT}/test"


@pytest.fixture(scope="session")
def redis_url() -> str:
    require_service("Redis", "127.0.0.1", 6379)
    return REDIS_URL


@pytest.fixture(autouse=True)
def _postgres_marker(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("postgres"):
        request.getfixturevalue("postgres_dsn")
    if request.node.get_closest_marker("redis"):
        request.getfixturevalue("redis_url")


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, seeded SQLite file of the demo; copy it (servers.copy_database) before use."""
    from tests.servers import seeded_database

    return seeded_database(tmp_path_factory.mktemp("seeded"))


@pytest.fixture
def otlp_receiver() -> Iterator[OTLPReceiver]:
    receiver = OTLPReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()


_memory_exporter = InMemorySpanExporter()
_memory_exporter_installed = False


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Spans finished in this process during the test, as the SDK hands them to exporters."""
    global _memory_exporter_installed
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        pytest.fail("otel_django did not set up an SDK TracerProvider")
    if not _memory_exporter_installed:
        provider.add_span_processor(SimpleSpanProcessor(_memory_exporter))
        _memory_exporter_installed = True
    _memory_exporter.clear()
    yield _memory_exporter
    _memory_exporter.clear()
