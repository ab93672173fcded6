"""A real Prometheus (Debian's 2.42) scrapes the app, as the README tells users to set it up.

Proves: with ``basic_auth`` and ``password_file``, Prometheus scrapes /metrics of a gunicorn
app with two workers (OpenMetrics and gzip, as Prometheus asks), ``up`` is 1, and the
request counts it stores are exact per route and in total; a second job with a wrong
password has ``up`` 0 and no samples.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import servers
from tests.conftest import free_port, prometheus_tool

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

PASSWORD = "prometheus-test-password"


def prometheus_binary() -> str:
    return prometheus_tool("prometheus")


def scrape_config(tmp: Path, target: str) -> Path:
    (tmp / "metrics-password").write_text(PASSWORD + "\n")
    (tmp / "wrong-password").write_text("not-" + PASSWORD + "\n")
    # The README's scrape config, with the test's paths and a 1s interval.
    config = f"""
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: django
    metrics_path: /metrics
    basic_auth:
      username: metrics
      password_file: {tmp / "metrics-password"}
    static_configs:
      - targets: ["{target}"]
  - job_name: wrong-password
    metrics_path: /metrics
    basic_auth:
      username: metrics
      password_file: {tmp / "wrong-password"}
    static_configs:
      - targets: ["{target}"]
"""
    path = tmp / "prometheus.yml"
    path.write_text(config)
    return path


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def value(self, expr: str) -> float | None:
        try:
            result = self.query(expr)
        except OSError:
            return None
        return float(result[0]["value"][1]) if result else None

    def wait_value(self, expr: str, expected: float, timeout: float = 30) -> float | None:
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.value(expr)
            if value == expected:
                return value
            time.sleep(0.5)
        return value


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[servers.Server, Prometheus]]:
    binary = prometheus_binary()
    tmp = tmp_path_factory.mktemp("prometheus")
    database = servers.copy_database(servers.seeded_database(tmp), tmp)
    port = free_port()
    env = servers.demo_env(
        database,
        OTEL_TRACES_EXPORTER="none",
        OTEL_DJANGO_ACCESS_LOG="false",
        OTEL_DJANGO_METRICS_PASSWORD_FILE=str(tmp / "metrics-password"),
    )
    config = scrape_config(tmp, f"127.0.0.1:{port}")
    app = servers.gunicorn(port, env, tmp / "app-logs", workers=2)
    prometheus_port = free_port()
    log = (tmp / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prometheus_port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        app.wait_ready("/healthz", timeout=60)
        yield app, Prometheus(f"http://127.0.0.1:{prometheus_port}")
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        app.stop()


def test_prometheus_scrapes_exact_counts(stack: tuple[servers.Server, Prometheus]) -> None:
    app, prometheus = stack
    assert prometheus.wait_value('up{job="django"}', 1, timeout=60) == 1
    plan = {"/products/": (200, 7), "/products/1/": (200, 5), "/no-such-page/": (404, 3)}
    for path, (status, times) in plan.items():
        for _ in range(times):
            assert app.get(path)[0] == status
    total = sum(times for _, times in plan.values())
    count = "http_server_request_duration_seconds_count"
    assert prometheus.wait_value(f'sum({count}{{job="django"}})', total) == total
    assert prometheus.value(f'sum({count}{{job="django",http_route="products/"}})') == 7
    assert prometheus.value(f'sum({count}{{job="django",http_route="products/<int:pk>/"}})') == 5
    assert prometheus.value(f'sum({count}{{job="django",http_response_status_code="404"}})') == 3
    assert prometheus.value(f'count({count}{{job="django",http_route=""}})') == 1
    assert prometheus.value('up{job="django"}') == 1
    assert prometheus.wait_value('up{job="wrong-password"}', 0) == 0
    assert prometheus.value('scrape_samples_scraped{job="wrong-password"}') == 0
    assert prometheus.value('count(target_info{job="django"})') == 1
    assert prometheus.value('count({job="django",otel_scope_name!=""})') is None
