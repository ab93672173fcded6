"""A user's project under its own test runner: otel_django adds no line and no warning.

A small project (eight tests making test-client requests, one a 404) is run with
``manage.py test`` and with pytest (pytest-django), once with ``"otel_django"`` in
``INSTALLED_APPS`` and once without; the outputs must have the same lines, apart from the
timing, with no Collector listening. ``TELEMETRY_IN_TESTS`` turns telemetry back on.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.servers import ROOT
from tests.support.services import free_port

pytestmark = pytest.mark.slow

SETTINGS = """
import os
SECRET_KEY = "quiet-tests"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "shopapp"]
if os.environ.get("WITH_OTEL") == "1":
    INSTALLED_APPS.insert(2, "otel_django")
if os.environ.get("TELEMETRY_IN_TESTS") == "1":
    OTEL_DJANGO = {"TELEMETRY_IN_TESTS": True}
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
ROOT_URLCONF = "mysite.urls"
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ALLOWED_HOSTS = ["*"]
USE_TZ = True
"""
URLS = """
from django.http import JsonResponse
from django.urls import include, path

def hello(request):
    from django.contrib.auth.models import User
    return JsonResponse({"users": User.objects.count()})

urlpatterns = [path("", include("otel_django.urls")), path("hello/", hello)]
"""
URLS_WITHOUT = URLS.replace('path("", include("otel_django.urls")), ', "")
TESTS = "from django.test import TestCase\n\n\nclass HelloTests(TestCase):\n" + "".join(
    f"    def test_{n}(self):\n"
    f"        self.assertEqual(self.client.get('/hello/').status_code, 200)\n"
    f"        self.assertEqual(self.client.get('/missing-{n}/').status_code, 404)\n\n"
    for n in range(8)
)
MANAGE = """
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
from django.core.management import execute_from_command_line
execute_from_command_line(sys.argv)
"""


def make_project(directory: Path, with_otel: bool) -> Path:
    (directory / "mysite").mkdir(parents=True)
    (directory / "shopapp").mkdir()
    (directory / "manage.py").write_text(MANAGE)
    (directory / "mysite" / "__init__.py").write_text("")
    (directory / "mysite" / "settings.py").write_text(SETTINGS)
    (directory / "mysite" / "urls.py").write_text(URLS if with_otel else URLS_WITHOUT)
    (directory / "shopapp" / "__init__.py").write_text("")
    (directory / "shopapp" / "tests.py").write_text(TESTS)
    (directory / "pytest.ini").write_text(
        "[pytest]\nDJANGO_SETTINGS_MODULE = mysite.settings\npython_files = tests.py\n"
    )
    return directory


def run(project: Path, command: list[str], with_otel: bool, **extra: str) -> str:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "DJANGO_", "PYTEST", "SENTRY_"))
    }
    env.update(
        PYTHONPATH=os.pathsep.join([str(project), str(ROOT)]),
        WITH_OTEL="1" if with_otel else "",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}",  # no Collector there
        OTEL_BSP_SCHEDULE_DELAY="50",
        **extra,
    )
    result = subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def normalized(output: str) -> list[str]:
    """Lines without timings and addresses, which differ from run to run."""
    text = re.sub(r"\d+(\.\d+)?s", "<t>", output)
    return [line.rstrip() for line in text.splitlines() if line.strip()]


COMMANDS = {
    "manage.py test": [sys.executable, "manage.py", "test", "-v", "1"],
    "pytest": [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests.py"],
}


@pytest.mark.parametrize("runner", list(COMMANDS))
def test_a_projects_test_run_prints_nothing_more_with_otel_django(
    tmp_path: Path, runner: str
) -> None:
    command = COMMANDS[runner]
    if runner == "pytest":
        command = [*command[:-1], "shopapp/tests.py"]
    without = run(make_project(tmp_path / "without", False), command, with_otel=False)
    with_otel = run(make_project(tmp_path / "with", True), command, with_otel=True)
    assert normalized(with_otel) == normalized(without), with_otel
    assert "export" not in with_otel and "otel_django" not in with_otel


def test_telemetry_in_tests_turns_it_back_on(tmp_path: Path) -> None:
    project = make_project(tmp_path / "on", True)
    output = run(project, COMMANDS["manage.py test"], with_otel=True, TELEMETRY_IN_TESTS="1")
    assert output.count('"logger":"otel_django.access"') == 16  # one line per request
    assert "span export to" in output  # and spans are exported (nothing listens)
