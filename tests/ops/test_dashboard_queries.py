"""Every dashboard query returns data from a real Prometheus scraping the real demo.

Starts the demo shop under gunicorn (two workers), sends known traffic to every kind of view
(list, detail, 404s, N+1, slow query, cache, error, SQLAlchemy, a POST with a body, and
failing SQL while a table is renamed away), runs Debian's Prometheus 2.42 scraping /metrics
every second with basic auth from a password file and evaluating alerts.yml, then:

* every Prometheus target of every panel, with the template variables substituted, returns
  a non-empty result, and every target that shows exemplars (latency, query duration,
  queries per request) gets exemplars from Prometheus' exemplar storage, each with the
  trace_id the Tempo data source link uses;
* the template variables' own queries list the service and its instance;
* every rule of alerts.yml evaluates without error against real series;
* a scrape with a wrong password looks exactly as docs/operations.md says Prometheus 2.42
  shows it: up == 0 and scrape_samples_scraped == 0, "401" only in the target's lastError.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.auth import authorization
from tests.support.ops import PROMETHEUS_DIR, ROOT
from tests.support.prometheus_server import PrometheusServer
from tests.support.services import free_port

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "otel-django.json"
JOB = "demo-shop"
PASSWORD = "dashboard-test-password"
RATE_INTERVAL = "1m"


@dataclass
class Stack:
    app: Any  # tests.support.servers.Server
    prometheus: PrometheusServer
    instance: str

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.prometheus.query(expr)

    def api(self, path: str) -> Any:
        return self.prometheus.api(path)


def send_traffic(app: Any, database: Path) -> int:
    """Requests that exercise every panel, status codes checked; returns how many were sent."""
    plan = [
        ("/products/", 200, 5),
        ("/products/1/", 200, 5),
        ("/products/999999/", 404, 2),
        ("/no-such-page/", 404, 2),
        ("/n-plus-one/", 200, 3),
        ("/slow/", 200, 2),
        ("/cached/", 200, 8),
        ("/sqlalchemy/", 200, 2),
        ("/boom/", 500, 3),
    ]
    for path, status, times in plan:
        for _ in range(times):
            got = app.get(path)[0]
            assert got == status, f"{path}: {got}"
    request = urllib.request.Request(
        app.base_url + "/products/", data=b'{"name": "x"}' * 50, method="POST",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
    # Failing SQL: the table the list view joins is renamed away for a moment.
    with sqlite3.connect(database) as db:
        db.execute("ALTER TABLE shop_category RENAME TO shop_category_away")
    try:
        for _ in range(3):
            assert app.get("/products/")[0] == 500
    finally:
        with sqlite3.connect(database) as db:
            db.execute("ALTER TABLE shop_category_away RENAME TO shop_category")
    assert app.get("/products/")[0] == 200
    return sum(times for _path, _status, times in plan) + 1 + 3 + 1


def prometheus_config(tmp: Path, target: str) -> Path:
    (tmp / "password").write_text(PASSWORD + "\n")
    (tmp / "wrong-password").write_text("not-the-password\n")
    shutil.copy(PROMETHEUS_DIR / "alerts.yml", tmp / "alerts.yml")
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": ["alerts.yml"],
        "scrape_configs": [
            {
                "job_name": JOB,
                "metrics_path": "/metrics",
                "basic_auth": {"username": "metrics", "password_file": str(tmp / "password")},
                "static_configs": [{"targets": [target]}],
            },
            {
                "job_name": "wrong-password",
                "metrics_path": "/metrics",
                "basic_auth": {
                    "username": "metrics",
                    "password_file": str(tmp / "wrong-password"),
                },
                "static_configs": [{"targets": [target]}],
            },
        ],
    }
    path = tmp / "prometheus.yml"
    path.write_text(json.dumps(config))  # JSON is YAML
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
    from tests.support import servers

    tmp = tmp_path_factory.mktemp("dashboard")
    port = free_port()
    # Prometheus starts first: it comes up while the demo is being migrated and seeded.
    prometheus = PrometheusServer(
        prometheus_config(tmp, f"127.0.0.1:{port}"), tmp, features=["exemplar-storage"]
    )
    app = None
    try:
        database = servers.copy_database(servers.seeded_database(tmp), tmp)
        env = servers.demo_env(
            database,
            OTEL_SERVICE_NAME=JOB,
            OTEL_TRACES_EXPORTER="none",
            OTEL_DJANGO_METRICS_PASSWORD=PASSWORD,
        )
        app = servers.gunicorn(port, env, tmp / "app-logs", workers=2)
        app.wait_ready("/healthz", timeout=60)
        status, _headers, body = app.get("/metrics", headers=authorization(PASSWORD))
        assert status == 200 and b"# TYPE" in body, (status, body[:200])

        result = Stack(app, prometheus, f"127.0.0.1:{port}")

        def scraped() -> bool:
            try:
                return bool(result.query(f'up{{job="{JOB}"}} == 1'))
            except OSError:
                return False

        wait_for(scraped, 30, "Prometheus to scrape the demo")
        sent = send_traffic(app, database)
        # Rates need samples after the traffic; the request counter must show all of it.
        wait_for(
            lambda: bool(result.query(
                f'sum(http_server_request_duration_seconds_count{{job="{JOB}"}}) >= {sent}'
            )),
            30,
            "the traffic to show up in Prometheus",
        )  # fmt: skip
        time.sleep(2)  # a couple of scrapes after the last request
        yield result
    finally:
        prometheus.stop()
        if app is not None:
            app.stop()


def substitute(expr: str, stack: Stack) -> str:
    return (
        expr.replace("$__rate_interval", RATE_INTERVAL)
        .replace("$__interval", "15s")
        .replace("$__range", "5m")
        .replace("$job", JOB)
        .replace("$instance", stack.instance)
    )


def dashboard_targets() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return [
        (f"{panel['title']} [{target['refId']}]", target["expr"])
        for panel in panels
        if panel.get("datasource", {}).get("type") == "prometheus"
        for target in panel.get("targets", [])
    ]


def test_every_panel_query_returns_data(stack: Stack) -> None:
    targets = dashboard_targets()
    assert len(targets) >= 20
    empty = []
    for title, expr in targets:
        if not stack.query(substitute(expr, stack)):
            empty.append(f"{title}: {substitute(expr, stack)}")
    assert not empty, "panels without data:\n" + "\n".join(empty)


def test_every_exemplar_panel_shows_exemplars(stack: Stack) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    targets = [
        (f"{panel['title']} [{target['refId']}]", target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if target.get("exemplar")
    ]
    assert len(targets) >= 6
    window = {"start": time.time() - 600, "end": time.time() + 60}
    for title, expr in targets:
        query = urllib.parse.urlencode({"query": substitute(expr, stack), **window})
        found = [e for s in stack.api(f"/api/v1/query_exemplars?{query}") for e in s["exemplars"]]
        assert found, f"{title}: no exemplars"
        assert all(len(e["labels"]["trace_id"]) == 32 for e in found), title


def test_template_variable_queries(stack: Stack) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    for name, expected in (("job", JOB), ("instance", stack.instance)):
        query = substitute(variables[name]["query"]["query"], stack)
        metric, label = query.removeprefix("label_values(").removesuffix(")").rsplit(", ", 1)
        values = stack.api(f"/api/v1/label/{label}/values?" + urllib.parse.urlencode(
            {"match[]": metric}
        ))  # fmt: skip
        assert expected in values, (name, values)


def test_known_traffic_is_visible(stack: Stack) -> None:
    def total(selector: str) -> float:
        result = stack.query(f"sum(http_server_request_duration_seconds_count{{{selector}}})")
        return float(result[0]["value"][1]) if result else 0.0

    assert total(f'job="{JOB}", http_route="boom/", http_response_status_code="500"') == 3
    assert total(f'job="{JOB}", http_route="products/<int:pk>/"') == 7
    n_plus_one = stack.query(f'sum(otel_django_db_n_plus_one_total{{job="{JOB}"}})')
    assert n_plus_one and float(n_plus_one[0]["value"][1]) >= 3
    db_errors = stack.query(
        f'sum(db_client_operation_duration_seconds_count{{job="{JOB}", error_type!=""}})'
    )
    assert db_errors and float(db_errors[0]["value"][1]) >= 3


def test_alert_rules_evaluate_without_errors(stack: Stack) -> None:
    def evaluated() -> bool:
        groups = stack.api("/api/v1/rules")["groups"]
        return all(r.get("lastEvaluation", "").startswith("20") for g in groups for r in g["rules"])

    wait_for(evaluated, 10, "the rules to be evaluated")
    for group in stack.api("/api/v1/rules")["groups"]:
        for rule in group["rules"]:
            assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))


def test_wrong_password_shows_as_up_zero_without_samples(stack: Stack) -> None:
    """The basis of DjangoMetricsAuthFailing: what an auth failure looks like in 2.42."""
    selector = '{job="wrong-password"}'
    assert [float(r["value"][1]) for r in stack.query(f"up{selector}")] == [0.0]
    assert [float(r["value"][1]) for r in stack.query(f"scrape_samples_scraped{selector}")] == [0.0]
    targets = stack.api("/api/v1/targets")["activeTargets"]
    wrong = next(t for t in targets if t["labels"]["job"] == "wrong-password")
    assert "401" in wrong["lastError"], wrong["lastError"]
