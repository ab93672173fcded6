"""Grafana provisioning: the dashboard JSON, its provider and the linked data sources.

Proves: the dashboard is provisionable (uid, title, unique panel ids, non-overlapping grid),
has the `job` (shown as "service") and `instance` variables, every Prometheus query filters
on both and uses only metric names the app exposes, and rate windows use $__rate_interval;
Loki log lines link to Tempo by trace_id and Tempo spans link back to Loki. The latency panels
and the queries-per-request panel ask for exemplars of histograms that carry them, on the data
source whose exemplarTraceIdDestinations names the label otel_django writes (checked against
the real renderer) and the Tempo data source's uid; Tempo's service map reads that same
Prometheus.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from opentelemetry.trace import SpanContext, TraceFlags

from otel_django.metrics.aggregate import Aggregate
from otel_django.metrics.exposition import Renderer, Snapshot
from otel_django.metrics.http import DURATION
from tests.support.ops import (
    APP_METRICS,
    EXEMPLAR_HISTOGRAMS,
    GRAFANA_DIR,
    PROMETHEUS_METRICS,
    load_yaml,
    metric_names,
)

DASHBOARD = GRAFANA_DIR / "dashboards" / "otel-django.json"


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    result = []
    for panel in dashboard["panels"]:
        result.append(panel)
        result.extend(panel.get("panels", []))
    return result


def prometheus_targets(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in panels(dashboard)
        if panel.get("datasource", {}).get("type") == "prometheus"
        for target in panel.get("targets", [])
    ]


def test_dashboard_is_provisionable(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "otel-django"
    assert dashboard["title"]
    assert "id" not in dashboard or dashboard["id"] is None  # provisioning assigns it
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in panels(dashboard):
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        area = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area


def test_template_variables(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["job"]["label"] == "service"
    assert variables["instance"]["includeAll"] is True
    assert "$job" in variables["instance"]["query"]["query"]
    assert variables["datasource"]["query"] == "prometheus"


def test_every_panel_is_described_and_queried(dashboard: dict[str, Any]) -> None:
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel.get("description"), panel["title"]
        assert panel.get("targets"), panel["title"]
    assert len(prometheus_targets(dashboard)) >= 20


def test_prometheus_queries(dashboard: dict[str, Any]) -> None:
    allowed = APP_METRICS | PROMETHEUS_METRICS
    for title, expr in prometheus_targets(dashboard):
        names = metric_names(expr)
        assert names and names <= allowed, f"{title}: {names - allowed}"
        selectors = re.findall(r"[a-z_]+\{([^}]*)\}", expr)
        assert selectors, title
        for selector in selectors:
            assert 'job=~"$job"' in selector and 'instance=~"$instance"' in selector, title
        for window in re.findall(r"\[([^\]]+)\]", expr):
            assert window == "$__rate_interval", title


def test_every_exposed_metric_is_on_the_dashboard(dashboard: dict[str, Any]) -> None:
    used = set().union(*(metric_names(e) for _t, e in prometheus_targets(dashboard)))
    families = {re.sub(r"_(bucket|sum|count)$", "", m) for m in APP_METRICS - {"target_info"}}
    for family in families:
        assert any(u.startswith(family) for u in used), family


def test_data_sources_link_logs_and_traces() -> None:
    config = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "datasources.yaml")
    by_type = {d["type"]: d for d in config["datasources"]}
    tempo, loki = by_type["tempo"], by_type["loki"]
    assert by_type["prometheus"]["isDefault"] is True
    assert tempo["jsonData"]["tracesToLogsV2"]["datasourceUid"] == loki["uid"]
    fields = loki["jsonData"]["derivedFields"]
    regex = next(f for f in fields if f.get("matcherType", "regex") == "regex")
    assert regex["datasourceUid"] == tempo["uid"]
    pattern = re.compile(regex["matcherRegex"])
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    for line in (
        f'{{"event":"request finished","trace_id":"{trace_id}","span_id":"00f067aa0ba902b7"}}',
        f'{{"event": "request finished", "trace_id": "{trace_id}"}}',
    ):
        match = pattern.search(line)
        assert match and match.group(1) == trace_id, line
    assert regex["url"] == "$${__value.raw}"  # "$$": Grafana expands "$" in provisioning


def test_dashboard_provider() -> None:
    config = load_yaml(GRAFANA_DIR / "provisioning" / "dashboards" / "otel-django.yaml")
    provider = config["providers"][0]
    assert config["apiVersion"] == 1
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/")


def exemplar_label_names() -> set[str]:
    """The label names of the exemplars otel_django's /metrics really writes."""
    aggregate = Aggregate(DURATION, limit=10)
    context = SpanContext(0x1234, 0x5678, False, TraceFlags(1))
    aggregate.record(0.2, ("GET", "http", 200, "a/", None), context)
    body = Renderer().render(Snapshot({aggregate.family_name: aggregate.family()}), True)
    found = re.findall(r" # \{([^}]*)\}", body.decode())
    assert found
    return {name for labels in found for name in re.findall(r'(\w+)="', labels)}


def test_latency_panels_show_exemplars_linked_to_tempo(dashboard: dict[str, Any]) -> None:
    with_exemplars = {
        panel["title"]: target
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
        if target.get("exemplar")
    }
    for title in (
        "Latency p50 / p95 / p99",
        "p95 latency by route",
        "Query p95 by operation and table",
        "Queries per request by route",
    ):
        assert title in with_exemplars, title
    for title, target in with_exemplars.items():
        assert metric_names(target["expr"]) <= EXEMPLAR_HISTOGRAMS, title
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"

    config = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "datasources.yaml")
    prometheus = [d for d in config["datasources"] if d["type"] == "prometheus"]
    [tempo] = [d for d in config["datasources"] if d["type"] == "tempo"]
    assert len(prometheus) == 1 and prometheus[0]["isDefault"] is True  # what $datasource picks
    [destination] = prometheus[0]["jsonData"]["exemplarTraceIdDestinations"]
    assert destination["datasourceUid"] == tempo["uid"]
    assert exemplar_label_names() == {"trace_id", "span_id"}
    assert destination["name"] == "trace_id"  # otel_django's and span_metrics' exemplar label
    assert "url" not in destination  # an internal link: the Tempo data source opens it
    assert tempo["jsonData"]["serviceMap"]["datasourceUid"] == prometheus[0]["uid"]


def test_queries_per_request_panel(dashboard: dict[str, Any]) -> None:
    [panel] = [p for p in panels(dashboard) if p["title"] == "Queries per request by route"]
    exprs = " ".join(t["expr"] for t in panel["targets"])
    assert "by (http_route)" in exprs and "by (le, http_route)" in exprs
    assert metric_names(exprs) == {
        "otel_django_db_queries_per_request_sum",
        "otel_django_db_queries_per_request_count",
        "otel_django_db_queries_per_request_bucket",
    }
