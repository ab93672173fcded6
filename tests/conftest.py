"""Shared fixtures: real services (PostgreSQL, Redis), an OTLP receiver, captured spans, log
lines and events, and the one way to run a test under another configuration.

Helpers that are not fixtures live in :mod:`tests.support`. A test that needs a service skips
with the reason when the service is down, except under CI (``CI=true``), where a missing
service is a failure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_django.config import Config
from tests.support.config import overridden_config
from tests.support.lines import Lines, parse_lines
from tests.support.otlp_receiver import OTLPReceiver
from tests.support.services import PG_HOST, PG_PORT, REDIS_URL, require_service


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
    from tests.support.servers import seeded_database

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


@pytest.fixture
def override_config() -> Iterator[Callable[..., Config]]:
    """``override_config(slow_query_ms=0, metrics_password=None ...)``: the configuration in
    effect with these ``Config`` fields changed, for the runtime, the log pipeline and the query
    insight alike; each call starts from the test's starting configuration, which is restored
    afterwards (:mod:`tests.support.config`)."""
    with overridden_config() as override:
        yield override


@pytest.fixture
def lines(capsys: pytest.CaptureFixture[str]) -> Lines:
    """Reads what was written to stdout since the last call, as parsed JSON lines."""
    capsys.readouterr()

    def read() -> list[dict[str, Any]]:
        return parse_lines(capsys.readouterr().out)

    return read


@pytest.fixture
def raw_output(capsys: pytest.CaptureFixture[str]) -> Callable[[], str]:
    capsys.readouterr()
    return lambda: capsys.readouterr().out


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    """Event dicts logged through structlog during the test (before rendering)."""
    with structlog.testing.capture_logs() as captured:
        yield captured
