"""Shared by the operations-kit tests: paths, YAML loading, PromQL metric names."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.support.services import prometheus_tool

ROOT = Path(__file__).resolve().parents[2]
COLLECTOR = ROOT / "collector"
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
EXAMPLES = ROOT / "examples"
DOCS = ROOT / "docs" / "operations.md"

# Every metric name the app exposes on /metrics (see docs/operations.md, "Metrics").
APP_METRICS = {
    *(
        f"{base}_{suffix}"
        for base in (
            "http_server_request_duration_seconds",
            "http_server_request_body_size_bytes",
            "http_server_response_body_size_bytes",
            "db_client_operation_duration_seconds",
            "otel_django_db_queries_per_request",
        )
        for suffix in ("bucket", "sum", "count")
    ),
    "http_server_active_requests",
    "otel_django_db_slow_queries_total",
    "otel_django_db_n_plus_one_total",
    "otel_django_db_migrations_unapplied",
    "db_client_connection_count",
    "db_client_connection_max",
    "otel_django_cache_requests_total",
    "process_cpu_time_seconds_total",
    "process_memory_usage_bytes",
    "process_thread_count",
    "cpython_gc_collections_total",
    "target_info",
}
PROMETHEUS_METRICS = {"up", "scrape_samples_scraped", "scrape_duration_seconds"}
# Produced by the Collector's span_metrics connector (collector/agent.yaml).
COLLECTOR_METRICS = {"traces_span_metrics_calls_total"}
# Histograms whose buckets carry exemplars on the app's /metrics (OpenMetrics).
EXEMPLAR_HISTOGRAMS = {
    "http_server_request_duration_seconds_bucket",
    "db_client_operation_duration_seconds_bucket",
    "otel_django_db_queries_per_request_bucket",
}

PROMQL_WORDS = {
    # aggregations, functions and keywords used in the shipped rules and panels
    "sum", "max", "min", "avg", "count", "rate", "increase", "irate", "histogram_quantile",
    "label_replace", "by", "without", "on", "ignoring", "group_left", "group_right", "and",
    "or", "unless", "bool", "offset", "vector", "scalar", "abs", "clamp_min", "absent",
}  # fmt: skip


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (good enough for the shipped expressions)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    words = set(re.findall(r"(?<![\w.$])[a-zA-Z_:][a-zA-Z0-9_:]*", text))
    return {w for w in words if w not in PROMQL_WORDS and not re.fullmatch(r"[0-9.e]+", w)}


def promtool() -> str:
    return prometheus_tool("promtool")
