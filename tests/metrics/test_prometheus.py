"""A real Prometheus (Debian's 2.42) scrapes the app, as the README tells users to set it up.

Proves: with ``basic_auth`` and ``password_file``, Prometheus scrapes /metrics of a gunicorn
app with two workers (OpenMetrics and gzip, as Prometheus asks), ``up`` is 1, and the
request counts it stores are exact per route and in total; a second job with a wrong
password has ``up`` 0 and no samples.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import servers
from tests.support.prometheus_server import PrometheusServer
from tests.support.services import free_port

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

PASSWORD = "prometheus-test-password"


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


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[servers.Server, PrometheusServer]]:
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
    prometheus = PrometheusServer(config, tmp)
    try:
        app.wait_ready("/healthz", timeout=60)
        yield app, prometheus
    finally:
        prometheus.stop()
        app.stop()


def test_prometheus_scrapes_exact_counts(stack: tuple[servers.Server, PrometheusServer]) -> None:
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
