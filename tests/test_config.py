"""The configuration object: sources, precedence, validation, and the system checks."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from otel_django import runtime
from otel_django.config import SETTINGS, ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.smoke


def test_defaults_with_nothing_set() -> None:
    config = load_config({}, {})
    assert config.traces.exporter == ("otlp",)
    assert config.metrics.exporter == ("prometheus",)
    assert config.logging.exporter == ()
    assert config.traces.sampler == "parentbased_traceidratio"
    assert config.traces.sampler_arg == 1.0
    assert config.metrics.password is None
    assert config.db.slow_query_ms == 100.0
    assert config.db.n_plus_one_threshold == 5
    assert config.logging.request_id_header == "X-Request-ID"
    assert config.traces.excluded_urls == ()  # otel_django's own views are skipped by view
    assert config.warnings == ()


def test_precedence_standard_env_then_prefixed_env_then_settings_then_default() -> None:
    settings = {"SERVICE_NAME": "from-settings", "SLOW_QUERY_MS": 250, "TRACES_EXPORTER": "none"}
    config = load_config({}, settings)
    assert (config.service.name, config.db.slow_query_ms, config.traces.exporter) == (
        "from-settings",
        250.0,
        (),
    )
    assert config.from_settings == {"SERVICE_NAME", "SLOW_QUERY_MS", "TRACES_EXPORTER"}

    env = {"OTEL_DJANGO_SERVICE_NAME": "from-prefixed-env", "OTEL_DJANGO_SLOW_QUERY_MS": "300"}
    config = load_config(env, settings)
    assert (config.service.name, config.db.slow_query_ms) == ("from-prefixed-env", 300.0)

    env["OTEL_SERVICE_NAME"] = "from-standard-env"
    env["OTEL_TRACES_EXPORTER"] = "console"
    config = load_config(env, settings)
    assert (config.service.name, config.traces.exporter) == ("from-standard-env", ("console",))
    assert config.from_settings == frozenset()


def test_service_name_precedence_follows_the_standard_variables() -> None:
    settings = {"SERVICE_NAME": "from-settings"}
    attributes = {"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=prod,service.name=ra"}
    assert load_config({}, settings).service.name == "from-settings"
    assert load_config(attributes, settings).service.name == "ra"
    assert load_config(
        {**attributes, "OTEL_DJANGO_SERVICE_NAME": "own"}, settings
    ).service.name == ("ra")
    both = {**attributes, "OTEL_SERVICE_NAME": "sn"}
    assert load_config(both, settings).service.name == "sn"


def test_exporter_lists_parse_as_the_sdk_reads_them() -> None:
    config = load_config(
        {"OTEL_TRACES_EXPORTER": "otlp, console", "OTEL_METRICS_EXPORTER": "otlp,prometheus"}, {}
    )
    assert config.traces.exporter == ("otlp", "console")
    assert config.metrics.exporter == ("otlp", "prometheus")
    config = load_config({"OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "console"}, {})
    assert config.metrics.exporter == () and not config.metrics_on
    assert config.logging.exporter == ("console",) and not config.logs_exported
    assert load_config({}, {"LOGS_EXPORTER": ["otlp"]}).logs_exported


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"OTEL_TRACES_SAMPLER_ARG": "2.5"}, "OTEL_TRACES_SAMPLER_ARG"),
        ({"OTEL_TRACES_SAMPLER_ARG": "lots"}, "OTEL_TRACES_SAMPLER_ARG"),
        ({"OTEL_TRACES_EXPORTER": "otlp,none"}, "OTEL_TRACES_EXPORTER"),
        ({"OTEL_SDK_DISABLED": "maybe"}, "OTEL_SDK_DISABLED"),
        ({"OTEL_PYTHON_DJANGO_EXCLUDED_URLS": "("}, "OTEL_PYTHON_DJANGO_EXCLUDED_URLS"),
    ],
)
def test_a_standard_variable_otel_django_cannot_use_is_a_warning_and_ignored(
    environ: dict[str, str], variable: str
) -> None:
    default = load_config({}, {})
    config = load_config(environ, {})
    (warning,) = config.warnings
    assert warning.startswith(variable)
    group, field = {
        "OTEL_TRACES_SAMPLER_ARG": ("traces", "sampler_arg"),
        "OTEL_TRACES_EXPORTER": ("traces", "exporter"),
        "OTEL_SDK_DISABLED": (None, "sdk_disabled"),
        "OTEL_PYTHON_DJANGO_EXCLUDED_URLS": ("traces", "excluded_urls"),
    }[variable]
    if group is None:
        assert getattr(config, field) == getattr(default, field)
    else:
        assert getattr(getattr(config, group), field) == getattr(getattr(default, group), field)


def test_blank_environment_values_count_as_unset() -> None:
    config = load_config({"OTEL_SERVICE_NAME": "  "}, {"SERVICE_NAME": "shop"})
    assert config.service.name == "shop"


def test_resource_attributes_variable_supplies_version_and_environment() -> None:
    config = load_config(
        {"OTEL_RESOURCE_ATTRIBUTES": "service.version=1.2.3,deployment.environment.name=prod"}, {}
    )
    assert (config.service.version, config.service.environment) == ("1.2.3", "prod")


def test_lists_and_networks_parse_from_env_and_settings() -> None:
    config = load_config({"OTEL_DJANGO_METRICS_ALLOWED_NETWORKS": "10.0.0.0/8, ::1/128"}, {})
    assert config.metrics.allowed_networks == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    config = load_config({}, {"EXCLUDED_URLS": [r"/internal/"]})
    assert config.traces.excluded_urls == (r"/internal/",)
    environ = {"OTEL_PYTHON_EXCLUDED_URLS": "generic", "OTEL_DJANGO_EXCLUDED_URLS": "own"}
    assert load_config(environ, {}).traces.excluded_urls == ("generic",)
    environ["OTEL_PYTHON_DJANGO_EXCLUDED_URLS"] = "django"
    assert load_config(environ, {}).traces.excluded_urls == ("django",)


@pytest.mark.parametrize(
    ("environ", "settings", "named"),
    [
        ({"OTEL_DJANGO_TRACES_SAMPLER_ARG": "2.5"}, {}, "OTEL_DJANGO_TRACES_SAMPLER_ARG"),
        ({}, {"TRACES_SAMPLER_ARG": 2.5}, "TRACES_SAMPLER_ARG"),
        ({"OTEL_DJANGO_SLOW_QUERY_MS": "-1"}, {}, "SLOW_QUERY_MS"),
        ({}, {"SLOW_QUERY_MS": "fast"}, "SLOW_QUERY_MS"),
        ({}, {"TRACES_EXPORTER": "otlp;console"}, "TRACES_EXPORTER"),
        ({}, {"REQUEST_HOOK": "no_such_module_4471.hook"}, "REQUEST_HOOK"),
        ({}, {"RESPONSE_HOOK": 42}, "RESPONSE_HOOK"),
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
    config = load_config({}, {})
    assert len({s.name for s in SETTINGS}) == len({s.path for s in SETTINGS}) == len(SETTINGS)
    for setting in SETTINGS:
        group, _, field = setting.path.rpartition(".")
        holder = getattr(config, group) if group else config
        assert getattr(holder, field) == setting.default, setting.name
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


@contextlib.contextmanager
def settings_runtime(**otel_django: object) -> Iterator[None]:
    """The runtime a process with these ``OTEL_DJANGO`` settings builds (as a system check in
    a process where setup has not run); the test run's is put back afterwards."""
    with override_settings(OTEL_DJANGO=otel_django):
        previous = runtime.reset()
        try:
            yield
        finally:
            runtime.reset(previous)


def test_system_check_reports_invalid_settings() -> None:
    with (
        settings_runtime(TRACES_SAMPLER_ARG=2.5),
        pytest.raises(SystemCheckError) as excinfo,
    ):
        call_command("check")
    assert "otel_django.E001" in str(excinfo.value)
    assert "TRACES_SAMPLER_ARG" in str(excinfo.value)


def test_system_check_warns_when_metrics_have_no_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with settings_runtime(TELEMETRY_IN_TESTS=True):
        call_command("check")
    assert "otel_django.W101" in capsys.readouterr().err
    # In a test run of a project that does not assert on telemetry: no deployment advice.
    with settings_runtime():
        call_command("check")
    assert "otel_django" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("OTEL_DJANGO_SLOW_QUERY_MS", "-1", "OTEL_DJANGO_SLOW_QUERY_MS"),
        ("CONTRACT_OTEL_DJANGO", '{"N_PLUS_ONE_THRESHOLD": "many"}', "N_PLUS_ONE_THRESHOLD"),
    ],
)
def test_a_bad_value_never_crashes_startup_and_check_reports_e001(
    tmp_path: Path, variable: str, value: str, named: str
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
        "DJANGO_SETTINGS_MODULE": "tests.contract.server_settings",
        "PYTHONPATH": str(ROOT),
        "DEMO_SQLITE_PATH": str(tmp_path / "db.sqlite3"),
        variable: value,
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args],
            cwd=ROOT / "examples" / "demo",
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    check = run("manage.py", "check")
    assert check.returncode != 0
    assert "otel_django.E001" in check.stderr and named in check.stderr
    assert "Traceback" not in check.stderr + check.stdout
    # The application itself (what a WSGI server runs) starts and serves, without telemetry,
    # after one line naming the setting.
    serve = run(
        "-c",
        "import django; django.setup(); from django.test import Client; "
        "r = Client().get('/ops/healthz'); print(r.status_code, 'X-Request-ID' in r.headers)",
    )
    assert serve.returncode == 0, serve.stderr
    assert serve.stdout.split() == ["200", "False"]  # served, and otel_django's middleware off
    assert "Traceback" not in serve.stderr
    (line,) = [x for x in serve.stderr.splitlines() if "otel_django" in x]
    assert named in line and "without telemetry" in line


def test_readme_lists_every_otel_variable_the_code_reads() -> None:
    import re

    readme = (ROOT / "README.md").read_text()
    start, end = "<!-- otel-variables:start -->", "<!-- otel-variables:end -->"
    table = readme.partition(start)[2].partition(end)[0]
    assert table.strip(), "the README has no OpenTelemetry variables table"
    names = set()
    for path in (ROOT / "otel_django").rglob("*.py"):
        names |= set(re.findall(r"[\"'](OTEL_[A-Z0-9_]+)[\"']", path.read_text()))
    for setting in SETTINGS:
        names |= {name for name in setting.env if name.startswith("OTEL_")}
    names = {n for n in names if not n.startswith("OTEL_DJANGO")}
    assert {"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_PYTHON_EXCLUDED_URLS"} <= names
    # A prefix (OTEL_BSP, passed to the batch processors' builder) is listed by its variables.
    missing = sorted(n for n in names if f"`{n}`" not in table and f"`{n}_" not in table)
    assert not missing, f"README's OpenTelemetry variables table misses {missing}"


def test_system_check_warns_when_upstreams_django_middleware_is_installed_too(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from django.conf import settings

    upstream = "opentelemetry.instrumentation.django.middleware.otel_middleware._DjangoMiddleware"
    otel = {"TELEMETRY_IN_TESTS": True, "METRICS_PASSWORD": "x"}
    with (
        override_settings(MIDDLEWARE=[upstream, *settings.MIDDLEWARE]),
        settings_runtime(**otel),
    ):
        call_command("check")
    err = capsys.readouterr().err
    assert "otel_django.W002" in err and "two server spans" in err
    with settings_runtime(**otel):
        call_command("check")
    assert "otel_django.W002" not in capsys.readouterr().err


def test_readme_documents_every_variable_the_tests_read() -> None:
    read: set[str] = set()
    for path in (ROOT / "tests").rglob("*.py"):
        read |= set(re.findall(r"OTEL_DJANGO_TEST_[A-Z_]+", path.read_text()))
    assert read >= {"OTEL_DJANGO_TEST_DB", "OTEL_DJANGO_TEST_REDIS_DB"}
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Run the tests") :]
    section = section[: section.index("\n## ", 1)]
    assert [name for name in sorted(read) if f"`{name}`" not in section] == []
