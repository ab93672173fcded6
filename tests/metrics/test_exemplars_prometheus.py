"""Exemplars end to end: gunicorn workers -> /metrics -> a real Prometheus with exemplar storage.

Two demo apps under gunicorn export their spans to an OTLP receiver speaking the real
protobuf: one samples every trace (3 workers), one none (``traceidratio`` at 0, 2 workers).
Debian's Prometheus 2.42, run with ``--enable-feature=exemplar-storage``, scrapes both as it
scrapes anything (it asks for OpenMetrics). Proves: ``/api/v1/query_exemplars`` returns
exemplars for http_server_request_duration_seconds and db_client_operation_duration_seconds
whose trace and span ids are those of server and query spans the receiver got for the same
requests, from more than one worker (their ``service.instance.id``), each exemplar's value
inside its bucket; the queries-per-request histogram links to server spans too; the 0.0.4
text format carries none; the app that samples nothing shows none at all.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from otel_django.db.duration import DURATION_BUCKETS as DB_BUCKETS
from otel_django.metrics.http import DURATION_BUCKETS as HTTP_BUCKETS
from otel_django.metrics.http import QUERY_BUCKETS
from tests.support import servers
from tests.support.auth import authorization
from tests.support.otlp_receiver import OTLPReceiver
from tests.support.prometheus_server import PrometheusServer
from tests.support.services import free_port
from tests.support.spans import server_spans

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

PASSWORD = "exemplar-test-password"
AUTH = authorization(PASSWORD)
PLAN = {
    "/products/": 8,
    "/products/1/": 6,
    "/n-plus-one/": 4,
    "/slow/": 2,
    "/no-such-page/": 3,
    "/cached/": 4,
}
SENT = sum(PLAN.values())
COUNT = "http_server_request_duration_seconds_count"


@dataclass
class Stack:
    sampled: servers.Server
    unsampled: servers.Server
    prometheus: PrometheusServer
    receiver: OTLPReceiver
    start: float


def prometheus_config(tmp: Path, sampled: int, unsampled: int) -> Path:
    (tmp / "password").write_text(PASSWORD + "\n")
    jobs = "".join(
        f"""
  - job_name: {job}
    basic_auth:
      username: metrics
      password_file: {tmp / "password"}
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""
        for job, port in (("sampled", sampled), ("unsampled", unsampled))
    )
    path = tmp / "prometheus.yml"
    path.write_text(f"global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:{jobs}")
    return path


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("exemplars")
    seeded = servers.seeded_database(tmp)
    receiver = OTLPReceiver().start()
    ports = free_port(), free_port()
    prometheus = PrometheusServer(
        prometheus_config(tmp, *ports), tmp, features=["exemplar-storage"]
    )
    apps: list[servers.Server] = []
    try:
        for name, port, workers, sampler in (
            ("sampled", ports[0], 3, {}),
            ("unsampled", ports[1], 2, {"OTEL_TRACES_SAMPLER": "traceidratio",
                                        "OTEL_TRACES_SAMPLER_ARG": "0"}),
        ):  # fmt: skip
            directory = tmp / name
            directory.mkdir()
            env = servers.demo_env(
                servers.copy_database(seeded, directory),
                OTEL_SERVICE_NAME=name,
                OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                OTEL_BSP_SCHEDULE_DELAY="100",
                OTEL_DJANGO_METRICS_PASSWORD=PASSWORD,
                OTEL_DJANGO_ACCESS_LOG="false",
                OTEL_DJANGO_METRICS_MULTIPROCESS_DIR=str(directory / "exchange"),
                **sampler,
            )
            apps.append(servers.gunicorn(port, env, directory / "logs", workers=workers))
        for app in apps:
            app.wait_ready("/healthz", timeout=60)
        start = time.time()
        # Sent several at a time: one sync worker answering everything in turn would leave
        # the other workers with no exemplar to merge.
        requests = [(path, n) for path, times in PLAN.items() for n in range(times)]
        for app in apps:
            with ThreadPoolExecutor(max_workers=6) as pool:
                statuses = list(
                    pool.map(
                        lambda r, app=app: app.get(
                            r[0], headers={"X-Request-ID": f"{r[0]}-{r[1]}"}
                        )[0],
                        requests,
                    )
                )
            assert set(statuses) <= {200, 404}, statuses
        result = Stack(apps[0], apps[1], prometheus, receiver, start)
        for job in ("sampled", "unsampled"):
            wait_for(
                lambda job=job: prometheus.value(f'sum({COUNT}{{job="{job}"}})') == SENT,
                60,
                f"Prometheus to store the {job} app's requests",
            )
        wait_for(lambda: len(server_spans(receiver)) >= SENT, 30, "the server spans")
        time.sleep(2)  # a few scrapes after the last request
        yield result
    finally:
        prometheus.stop()
        for app in apps:
            app.stop()
        receiver.stop()


def exemplars(stack: Stack, selector: str) -> list[tuple[dict[str, str], dict[str, Any]]]:
    """(series labels, exemplar) of everything Prometheus stored for ``selector``."""
    query = urlencode({"query": selector, "start": stack.start - 60, "end": time.time() + 60})
    data = stack.prometheus.api(f"/api/v1/query_exemplars?{query}")
    return [(series["seriesLabels"], e) for series in data for e in series["exemplars"]]


def assert_inside_its_bucket(
    labels: dict[str, str], value: float, bounds: tuple[float, ...]
) -> None:
    upper = float(labels["le"])
    edges = [-math.inf, *bounds, math.inf]
    lower = edges[edges.index(upper) - 1]
    assert lower < value <= upper, (labels, value)


def test_request_duration_exemplars_are_server_spans_the_collector_got(stack: Stack) -> None:
    found = exemplars(stack, 'http_server_request_duration_seconds_bucket{job="sampled"}')
    assert found, "no exemplar stored"
    spans = {(s.trace_id, s.span_id): s for s in server_spans(stack.receiver)}
    instances = set()
    for labels, exemplar in found:
        ids = (exemplar["labels"]["trace_id"], exemplar["labels"]["span_id"])
        assert ids in spans, ids
        span = spans[ids]
        assert span.resource["service.name"] == "sampled"
        assert span.attributes.get("http.route", "") == labels.get("http_route", "")
        assert_inside_its_bucket(labels, float(exemplar["value"]), HTTP_BUCKETS)
        instances.add(span.resource["service.instance.id"])
    assert len(instances) >= 2, "exemplars of one worker only: the merge lost the others'"
    routes = {labels.get("http_route") for labels, _ in found}
    assert {"products/", "products/<int:pk>/", "slow/"} <= routes


def test_query_duration_exemplars_are_query_spans_the_collector_got(stack: Stack) -> None:
    found = exemplars(stack, 'db_client_operation_duration_seconds_bucket{job="sampled"}')
    assert found
    queries = {(s.trace_id, s.span_id) for s in stack.receiver.spans if s.kind == "CLIENT"}
    for labels, exemplar in found:
        ids = (exemplar["labels"]["trace_id"], exemplar["labels"]["span_id"])
        assert ids in queries, ids
        assert_inside_its_bucket(labels, float(exemplar["value"]), DB_BUCKETS)


def test_queries_per_request_exemplars_are_server_spans(stack: Stack) -> None:
    found = exemplars(stack, 'otel_django_db_queries_per_request_bucket{job="sampled"}')
    spans = {(s.trace_id, s.span_id): s for s in server_spans(stack.receiver)}
    assert found
    for labels, exemplar in found:
        span = spans[(exemplar["labels"]["trace_id"], exemplar["labels"]["span_id"])]
        assert span.attributes["otel_django.db.query_count"] == float(exemplar["value"])
        assert_inside_its_bucket(labels, float(exemplar["value"]), QUERY_BUCKETS)


def test_text_format_has_no_exemplars(stack: Stack) -> None:
    status, headers, body = stack.sampled.get("/metrics", headers=AUTH)
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b"_bucket{" in body and b" # {" not in body
    openmetrics = {**AUTH, "Accept": "application/openmetrics-text; version=1.0.0"}
    assert b' # {trace_id="' in stack.sampled.get("/metrics", headers=openmetrics)[2]


def test_an_app_that_samples_nothing_has_no_exemplars(stack: Stack) -> None:
    openmetrics = {**AUTH, "Accept": "application/openmetrics-text; version=1.0.0"}
    status, _, body = stack.unsampled.get("/metrics", headers=openmetrics)
    assert status == 200 and b"http_server_request_duration_seconds_bucket{" in body
    assert b" # {" not in body
    assert exemplars(stack, '{job="unsampled"}') == []
    assert not [s for s in stack.receiver.spans if s.resource["service.name"] == "unsampled"]
