"""Prometheus configuration, alert rules and their unit tests.

Proves: prometheus.yml is valid for promtool 2.42 (with a temporary password file standing in
for the secret) and scrapes the app with basic auth from a password file under the service's
name; the rules are valid and their promtool unit tests pass; each alert has a unit test in
which it fires and a case in which it must not (an empty expectation, or input series of the
same test that are not in the expected alerts); every alert is documented and uses only the
metric names the app (or Prometheus, or the Collector's span metrics) really exposes; every
alert name the configs and docs mention exists.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.ops import (
    APP_METRICS,
    COLLECTOR_METRICS,
    DOCS,
    PROMETHEUS_DIR,
    PROMETHEUS_METRICS,
    load_yaml,
    metric_names,
    promtool,
)

CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES = PROMETHEUS_DIR / "alerts.yml"
RULE_TESTS = PROMETHEUS_DIR / "alerts_test.yml"
SEVERITIES = {"critical", "warning", "info"}


def rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def run(*args: str, cwd: Path) -> str:
    result = subprocess.run(
        list(args), cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def config_with_password_file(tmp_path: Path) -> Path:
    """prometheus.yml and its rules in tmp_path, password_file pointing at a real file there.

    promtool 2.42 does not insist on the file, newer releases check that it exists; the
    server reads it on every scrape. A copy keeps the check independent of both.
    """
    password = tmp_path / "metrics_password"
    password.write_text("a-test-password\n")
    text = CONFIG.read_text(encoding="utf-8")
    assert "password_file: /run/secrets/metrics_password" in text
    text = text.replace("/run/secrets/metrics_password", str(password))
    (tmp_path / "prometheus.yml").write_text(text)
    shutil.copy(RULES, tmp_path / "alerts.yml")
    return tmp_path / "prometheus.yml"


@pytest.mark.prometheus
def test_promtool_check_config(tmp_path: Path) -> None:
    config = config_with_password_file(tmp_path)
    output = run(promtool(), "check", "config", str(config), cwd=tmp_path)
    assert "SUCCESS" in output


@pytest.mark.prometheus
def test_promtool_check_rules() -> None:
    output = run(promtool(), "check", "rules", str(RULES), cwd=PROMETHEUS_DIR)
    assert f"SUCCESS: {len(rules())} rules found" in output


@pytest.mark.prometheus
def test_promtool_unit_tests_pass() -> None:
    output = run(promtool(), "test", "rules", RULE_TESTS.name, cwd=PROMETHEUS_DIR)
    assert "SUCCESS" in output


def test_app_is_scraped_with_basic_auth_from_a_file() -> None:
    config = load_yaml(CONFIG)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    app = jobs["demo-shop"]  # job name = OTEL_SERVICE_NAME of the demo
    assert app.get("metrics_path", "/metrics") == "/metrics"
    assert set(app["basic_auth"]) == {"username", "password_file"}  # never an inline password
    assert app["static_configs"][0]["targets"] == ["demo:8000"]
    assert "password:" not in CONFIG.read_text(encoding="utf-8")
    assert config["rule_files"] == ["alerts.yml"]
    assert "otel-collector" in jobs  # span metrics, used by DjangoMetricsAuthFailing


def test_every_alert_is_complete_and_documented() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in docs.splitlines()
        if line.startswith("#")
    }
    names = [a["alert"] for a in alerts()]
    assert len(names) == len(set(names))
    assert len(names) >= 8
    for alert in alerts():
        name = alert["alert"]
        assert alert.get("for"), name
        assert alert["labels"]["severity"] in SEVERITIES, name
        annotations = alert["annotations"]
        assert len(annotations["summary"]) > 20, name
        assert len(annotations["description"]) > 80, name
        assert annotations["runbook"] == f"docs/operations.md#{name.lower()}", name
        assert name.lower() in anchors, f"{name}: no heading in {DOCS.name}"


def test_rules_use_only_exposed_metric_names() -> None:
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    allowed = APP_METRICS | PROMETHEUS_METRICS | COLLECTOR_METRICS | recorded
    for rule in rules():
        used = metric_names(rule["expr"])
        assert used, rule
        assert used <= allowed, f"{rule.get('alert', rule.get('record'))}: {used - allowed}"


def series_labels(series: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="([^"]*)"', series))


def test_each_alert_fires_and_does_not_fire_in_unit_tests() -> None:
    unit_tests = load_yaml(RULE_TESTS)
    assert unit_tests["rule_files"] == ["alerts.yml"]
    fires: set[str] = set()
    silent: set[str] = set()
    for test in unit_tests["tests"]:
        inputs = [series_labels(s["series"]) for s in test["input_series"]]
        for case in test["alert_rule_test"]:
            name = case["alertname"]
            expected = case.get("exp_alerts") or []
            if not expected:
                silent.add(name)
                continue
            fires.add(name)
            for alert in expected:
                assert alert["exp_annotations"]["summary"], name  # annotations are asserted
            # Input series that match no expected alert on its identifying labels: the
            # exact-set comparison of promtool proves they did not fire.
            keys = [{k: v for k, v in a["exp_labels"].items() if k != "severity"} for a in expected]
            unmatched = [
                labels
                for labels in inputs
                if not any(all(labels.get(k) == v for k, v in key.items()) for key in keys)
            ]
            if unmatched:
                silent.add(name)
    names = {a["alert"] for a in alerts()}
    assert names <= fires, f"never fire in tests: {names - fires}"
    assert names <= silent, f"never shown not firing: {names - silent}"


def test_unit_test_file_is_plain_yaml() -> None:
    # promtool reads it; make sure nothing relies on a YAML feature PyYAML would reject.
    yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))


def test_every_alert_name_mentioned_exists() -> None:
    names = {a["alert"] for a in alerts()}
    root = PROMETHEUS_DIR.parents[1]
    files = [
        *(root / "collector").glob("*.yaml"),
        *(root / "deploy").rglob("*.y*ml"),
        *(root / "deploy").rglob("*.json"),
        *(root / "docs").glob("*.md"),
        root / "README.md",
        root / "examples" / "docker-compose.yml",
    ]
    mentioned = set()
    for path in files:
        mentioned |= set(re.findall(r"\bDjango[A-Z][A-Za-z0-9]+\b", path.read_text("utf-8")))
    assert mentioned, "no alert mentioned anywhere?"
    assert mentioned <= names, f"not alerts: {mentioned - names}"
