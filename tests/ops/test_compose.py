"""examples/docker-compose.yml and examples/Dockerfile, checked as data (no Docker here).

Proves: the file parses; everything it builds from or mounts exists in the repository
(secrets: their documented .example copy); the Dockerfile's COPY sources exist and it runs the
documented command; the hostnames the shipped configs use (Prometheus targets, Collector
exporters, Grafana data sources) are services of the stack; app and Prometheus read the
metrics password from the same mounted secret; Prometheus keeps exemplars.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from tests.support.ops import COLLECTOR, EXAMPLES, GRAFANA_DIR, PROMETHEUS_DIR, ROOT, load_yaml

COMPOSE = EXAMPLES / "docker-compose.yml"
DOCKERFILE = EXAMPLES / "Dockerfile"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = load_yaml(COMPOSE)
    assert isinstance(data, dict)
    return data


def host_path(source: str) -> Path:
    return (EXAMPLES / source).resolve()


def bind_mounts(service: dict[str, Any]) -> list[tuple[Path, str]]:
    mounts = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append((host_path(source), target))
    return mounts


def test_services(compose: dict[str, Any]) -> None:
    assert {"demo", "otel-collector", "prometheus", "tempo", "loki", "grafana"} <= set(
        compose["services"]
    )


def test_everything_mounted_or_built_exists(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for source, _target in bind_mounts(service):
            assert source.exists(), f"{name}: {source}"
            assert ROOT in source.parents, f"{name}: {source} is outside the repository"
        if "build" in service:
            context = host_path(service["build"]["context"])
            assert (context / service["build"].get("dockerfile", "Dockerfile")).is_file()
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in compose["volumes"], f"{name}: named volume {source}"
    for secret in compose["secrets"].values():
        path = host_path(secret["file"])
        # The real secret is created by the operator from its documented example.
        assert path.with_name(path.name + ".example").is_file(), path


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def test_dockerfile(compose: dict[str, Any]) -> None:
    context = host_path(compose["services"]["demo"]["build"]["context"])
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.12-slim")
    for keyword, rest in instructions:
        if keyword == "COPY":
            *sources, _dest = shlex.split(rest)
            for source in sources:
                assert (context / source).exists(), f"COPY {source}: not in the build context"
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert 'pip install -e ".[demo]"' in runs
    cmd = " ".join(rest for keyword, rest in instructions if keyword == "CMD")
    assert (
        "opentelemetry-instrument gunicorn -c python:otel_django.gunicorn --chdir examples/demo "
        "demo.wsgi -b 0.0.0.0:8000 --workers 2"
    ) in cmd
    assert any(k == "USER" and rest != "root" for k, rest in instructions)


def test_app_environment(compose: dict[str, Any]) -> None:
    env = compose["services"]["demo"]["environment"]
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    assert env["OTEL_SERVICE_NAME"] == "demo-shop"
    assert "OTEL_DJANGO_METRICS_PASSWORD" not in env  # only the file


def test_one_secret_for_app_and_prometheus(compose: dict[str, Any]) -> None:
    services = compose["services"]
    app_file = services["demo"]["environment"]["OTEL_DJANGO_METRICS_PASSWORD_FILE"]
    prometheus = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "demo-shop")
    assert job["basic_auth"]["password_file"] == app_file
    secret = Path(app_file).name
    assert app_file == f"/run/secrets/{secret}"
    assert secret in services["demo"]["secrets"]
    assert secret in services["prometheus"]["secrets"]


def test_configs_are_mounted_where_their_commands_look(compose: dict[str, Any]) -> None:
    services = compose["services"]
    expected = {
        "otel-collector": (COLLECTOR / "agent.yaml", "--config="),
        "otel-gateway": (COLLECTOR / "gateway.yaml", "--config="),
        "prometheus": (PROMETHEUS_DIR / "prometheus.yml", "--config.file="),
        "tempo": (ROOT / "deploy/tempo/tempo.yaml", "-config.file="),
        "loki": (ROOT / "deploy/loki/loki.yaml", "-config.file="),
    }
    for name, (config, flag) in expected.items():
        service = services[name]
        targets = {source: target for source, target in bind_mounts(service)}
        target = targets[config.resolve()]
        assert f"{flag}{target}" in service["command"], name
    prometheus_mounts = {s: t for s, t in bind_mounts(services["prometheus"])}
    rules = prometheus_mounts[(PROMETHEUS_DIR / "alerts.yml").resolve()]
    config = prometheus_mounts[(PROMETHEUS_DIR / "prometheus.yml").resolve()]
    assert Path(rules).parent == Path(config).parent  # rule_files: [alerts.yml] is relative
    grafana = {s: t for s, t in bind_mounts(services["grafana"])}
    provider = load_yaml(GRAFANA_DIR / "provisioning/dashboards/otel-django.yaml")
    dashboards_path = provider["providers"][0]["options"]["path"]
    assert grafana[(GRAFANA_DIR / "dashboards").resolve()] == dashboards_path
    assert grafana[(GRAFANA_DIR / "provisioning/datasources").resolve()] == (
        "/etc/grafana/provisioning/datasources"
    )


def hosts_in(text: str) -> set[str]:
    return set(re.findall(r"(?:https?://|\s|\"|:-)([a-z][a-z0-9-]+):\d{4,5}\b", text))


def test_hostnames_used_by_the_configs_are_services(compose: dict[str, Any]) -> None:
    services = set(compose["services"])
    texts = [
        (COLLECTOR / "agent.yaml").read_text(),
        (COLLECTOR / "gateway.yaml").read_text(),
        (PROMETHEUS_DIR / "prometheus.yml").read_text(),
        (GRAFANA_DIR / "provisioning/datasources/datasources.yaml").read_text(),
    ]
    hosts = set().union(*(hosts_in(t) for t in texts)) - {"localhost"}
    assert {"demo", "tempo", "loki", "prometheus", "otel-collector"} <= hosts
    assert hosts <= services, hosts - services


def test_ports_are_published_on_loopback_only(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


def test_prometheus_keeps_exemplars(compose: dict[str, Any]) -> None:
    assert "--enable-feature=exemplar-storage" in compose["services"]["prometheus"]["command"]
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    assert config["storage"]["exemplars"]["max_exemplars"] > 0
