"""The configuration object: sources, precedence, validation, and the system checks."""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from otel_django.config import SETTINGS, ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.smoke


def test_defaults_with_nothing_set() -> None:
    config = load_config({}, {})
    assert config.traces_exporter == "otlp"
    assert config.otlp_endpoint == "http://localhost:4318"
    assert config.traces_sampler == "parentbased_traceidratio"
    assert config.traces_sampler_arg == 1.0
    assert config.metrics_password is None
    assert config.slow_query_ms == 100.0
    assert config.n_plus_one_threshold == 5
    assert config.request_id_header == "X-Request-ID"
    assert config.excluded_urls_regex is not None
    assert config.excluded_urls_regex.search("/metrics")
    assert not config.excluded_urls_regex.search("/products/")


def test_precedence_standard_env_then_prefixed_env_then_settings_then_default() -> None:
    settings = {"SERVICE_NAME": "from-settings", "SLOW_QUERY_MS": 250, "TRACES_EXPORTER": "none"}
    config = load_config({}, settings)
    assert (config.service_name, config.slow_query_ms, config.traces_exporter) == (
        "from-settings",
        250.0,
        "none",
    )
    assert config.from_settings == {"SERVICE_NAME", "SLOW_QUERY_MS", "TRACES_EXPORTER"}

    env = {"OTEL_DJANGO_SERVICE_NAME": "from-prefixed-env", "OTEL_DJANGO_SLOW_QUERY_MS": "300"}
    config = load_config(env, settings)
    assert (config.service_name, config.slow_query_ms) == ("from-prefixed-env", 300.0)

    env["OTEL_SERVICE_NAME"] = "from-standard-env"
    env["OTEL_TRACES_EXPORTER"] = "console"
    config = load_config(env, settings)
    assert (config.service_name, config.traces_exporter) == ("from-standard-env", "console")
    assert config.from_settings == frozenset()


def test_blank_environment_values_count_as_unset() -> None:
    config = load_config({"OTEL_SERVICE_NAME": "  "}, {"SERVICE_NAME": "shop"})
    assert config.service_name == "shop"


def test_resource_attributes_variable_supplies_version_and_environment() -> None:
    config = load_config(
        {"OTEL_RESOURCE_ATTRIBUTES": "service.version=1.2.3,deployment.environment.name=prod"}, {}
    )
    assert (config.service_version, config.environment) == ("1.2.3", "prod")


def test_lists_and_networks_parse_from_env_and_settings() -> None:
    config = load_config({"OTEL_DJANGO_METRICS_ALLOWED_NETWORKS": "10.0.0.0/8, ::1/128"}, {})
    assert config.metrics_allowed_networks == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    config = load_config({}, {"EXCLUDED_URLS": [r"^/internal/"]})
    assert config.excluded_urls == (r"^/internal/",)


@pytest.mark.parametrize(
    ("environ", "settings", "named"),
    [
        ({"OTEL_TRACES_SAMPLER_ARG": "2.5"}, {}, "OTEL_TRACES_SAMPLER_ARG"),
        ({}, {"TRACES_SAMPLER_ARG": 2.5}, "TRACES_SAMPLER_ARG"),
        ({"OTEL_DJANGO_SLOW_QUERY_MS": "-1"}, {}, "SLOW_QUERY_MS"),
        ({}, {"SLOW_QUERY_MS": "fast"}, "SLOW_QUERY_MS"),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, {}, "OTEL_TRACES_EXPORTER"),
        ({}, {"N_PLUS_ONE_THRESHOLD": 1}, "N_PLUS_ONE_THRESHOLD"),
        ({}, {"N_PLUS_ONE_THRESHOLD": 5.5}, "N_PLUS_ONE_THRESHOLD"),
        ({}, {"METRICS_ENABLED": "maybe"}, "METRICS_ENABLED"),
        ({}, {"METRICS_ALLOWED_NETWORKS": ["10.0.0.0/33"]}, "METRICS_ALLOWED_NETWORKS"),
        ({}, {"EXCLUDED_URLS": ["("]}, "EXCLUDED_URLS"),
        ({}, {"REQUEST_ID_HEADER": "X Request\nId"}, "REQUEST_ID_HEADER"),
        ({}, {"SLOW_QUERY_MSS": 3}, "SLOW_QUERY_MSS"),
    ],
)
def test_invalid_values_raise_an_error_naming_the_setting(
    environ: dict[str, str], settings: dict[str, object], named: str
) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_config(environ, settings)
    assert named in str(excinfo.value)


def test_every_setting_has_a_doc_and_a_config_field() -> None:
    from otel_django.config import Config

    fields = set(Config.__dataclass_fields__) - {"from_settings"}
    assert {s.name.lower() for s in SETTINGS} == fields
    assert all(s.doc for s in SETTINGS)


def test_readme_settings_table_is_generated_from_the_settings() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from settings_table import table
    finally:
        sys.path.pop(0)
    readme = (ROOT / "README.md").read_text()
    assert table() in readme, "run: python scripts/settings_table.py --write"
    assert all(f"`{s.name}`" in readme for s in SETTINGS)


def test_system_check_reports_invalid_settings() -> None:
    with (
        override_settings(OTEL_DJANGO={"TRACES_SAMPLER_ARG": 2.5}),
        pytest.raises(SystemCheckError) as excinfo,
    ):
        call_command("check")
    assert "otel_django.E001" in str(excinfo.value)
    assert "TRACES_SAMPLER_ARG" in str(excinfo.value)


def test_system_check_warns_when_metrics_have_no_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with override_settings(OTEL_DJANGO={}):
        call_command("check")
    assert "otel_django.W101" in capsys.readouterr().err


def test_startup_fails_with_a_message_naming_the_setting(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "demo.settings",
        "DEMO_SQLITE_PATH": str(tmp_path / "db.sqlite3"),
        "OTEL_TRACES_SAMPLER_ARG": "2.5",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT / "examples" / "demo",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "OTEL_TRACES_SAMPLER_ARG" in result.stderr


def test_readme_documents_every_variable_the_tests_read() -> None:
    read: set[str] = set()
    for path in (ROOT / "tests").rglob("*.py"):
        read |= set(re.findall(r"OTEL_DJANGO_TEST_[A-Z_]+", path.read_text()))
    assert read >= {"OTEL_DJANGO_TEST_DB", "OTEL_DJANGO_TEST_REDIS_DB"}
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Run the tests") :]
    section = section[: section.index("\n## ", 1)]
    assert [name for name in sorted(read) if f"`{name}`" not in section] == []
