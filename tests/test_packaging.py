"""The package as users receive it: built once, installed (not the checkout) beside each
supported Django in a fresh virtual environment, serving a request whose span is exported.

Proves: ``python -m build`` makes a wheel and an sdist (the wheel is built from the sdist, so
the sdist is complete); ``twine check --strict`` passes; the wheel holds ``py.typed`` and the
entry points and nothing of ``tests/``; its metadata states the supported matrix; installed
with Django 5.2 (Python 3.11), 6.0 (Python 3.12) and 6.1 (Python 3.13) it serves a request
under runserver and exports the span to the OTLP receiver; installed where Django 6.1 already
is, it leaves Django 6.1 in place.
"""

from __future__ import annotations

import email
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.otlp_receiver import OTLPReceiver
from tests.support.servers import ROOT, Server
from tests.support.services import IN_CI, free_port

pytestmark = pytest.mark.slow

# (Python, Django): the legs of scripts/matrix.sh.
LEGS = [("3.11", "5.2"), ("3.12", "6.0"), ("3.13", "6.1")]
NEWEST_DJANGO = "6.1"

SETTINGS = """\
SECRET_KEY = "packaging-test"
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = ["otel_django"]
ROOT_URLCONF = "site_under_test.urls"
USE_TZ = True
OTEL_DJANGO = {"SERVICE_NAME": "wheel-check"}
"""
URLS = """\
import otel_django
from django.http import HttpResponse
from django.urls import path

urlpatterns = [path("hello/", lambda request: HttpResponse(otel_django.__file__))]
"""


def run(*command: str | Path, cwd: Path | None = None, timeout: float = 600) -> str:
    result = subprocess.run(
        [str(c) for c in command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert result.returncode == 0, f"{command}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def find_python(version: str) -> str:
    """The interpreter the matrix uses for ``version`` (scripts/find-python)."""
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "find-python"), version], capture_output=True, text=True
    )
    if result.returncode != 0:
        message = result.stderr.strip() or f"Python {version} not found"
        if IN_CI:
            pytest.fail(f"{message}; CI must provide it")
        pytest.skip(message)
    return result.stdout.strip()


def source_files() -> list[str]:
    """What a clean checkout holds: the tracked files and new ones not ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel and sdist, built once from a copy of the checkout (nothing is written there)."""
    source = tmp_path_factory.mktemp("source")
    for name in source_files():
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--outdir", out, source)
    return out


def test_wheel_and_sdist(dist: Path) -> None:
    (wheel,) = dist.glob("otel_django-*.whl")
    (sdist,) = dist.glob("otel_django-*.tar.gz")
    run(sys.executable, "-m", "twine", "check", "--strict", wheel, sdist)
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(archive.read(info))
        entry_points = archive.read(info.replace("METADATA", "entry_points.txt")).decode()
    assert "otel_django/py.typed" in names
    assert "otel_django/servers.py" in names
    assert not [n for n in names if n.startswith(("tests/", "examples/", "benchmarks/"))]
    assert metadata["Requires-Python"] == ">=3.11"
    assert "Django<6.2,>=5.2" in metadata.get_all("Requires-Dist")
    classifiers = metadata.get_all("Classifier")
    for version in ("5.2", "6.0", "6.1"):
        assert f"Framework :: Django :: {version}" in classifiers
    for version in ("3.11", "3.12", "3.13"):
        assert f"Programming Language :: Python :: {version}" in classifiers
    assert "otel_django = otel_django.distro:OtelDjangoDistro" in entry_points


@pytest.mark.parametrize(("python", "django"), LEGS, ids=[f"django-{d}" for _, d in LEGS])
def test_installed_wheel_serves_a_traced_request(
    python: str, django: str, dist: Path, tmp_path: Path, otlp_receiver: OTLPReceiver
) -> None:
    interpreter = find_python(python)
    (wheel,) = dist.glob("otel_django-*.whl")
    venv = tmp_path / "venv"
    run(interpreter, "-m", "venv", venv)
    pip = [venv / "bin" / "python", "-m", "pip", "install", "--quiet"]
    if django == NEWEST_DJANGO:
        # Django is there first (installed by another package, say): it must stay.
        run(*pip, f"Django~={django}.0")
        run(*pip, wheel)
    else:
        run(*pip, wheel, f"Django~={django}.0")
    version = run(venv / "bin" / "python", "-c", "import django; print(django.get_version())")
    assert version.strip().startswith(django + "."), version

    site = tmp_path / "site"
    (site / "site_under_test").mkdir(parents=True)
    (site / "site_under_test" / "__init__.py").write_text("")
    (site / "site_under_test" / "settings.py").write_text(SETTINGS)
    (site / "site_under_test" / "urls.py").write_text(URLS)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DJANGO_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="site_under_test.settings",
        PYTHONPATH=str(site),  # the site only: otel_django comes from the venv
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="100",
    )
    port = free_port()
    command = [str(venv / "bin" / "python"), "-m", "django", "runserver", "--noreload"]
    server = Server([*command, f"127.0.0.1:{port}"], env, port, tmp_path / "logs")
    try:
        server.wait_ready("/hello/", timeout=60)
        status, headers, body = server.get("/hello/")
        assert status == 200
        assert body.decode().startswith(str(venv)), body  # the installed wheel, not the checkout
        assert "X-Request-ID" in headers
        assert otlp_receiver.wait_for(lambda r: len(r.spans_named("GET hello/")) >= 2)
    finally:
        server.stop()
    span = otlp_receiver.spans_named("GET hello/")[0]
    assert span.resource["service.name"] == "wheel-check"
    assert span.resource["telemetry.distro.name"] == "otel_django"
    assert span.attributes["http.response.status_code"] == 200
    assert "Traceback" not in server.stderr(), server.stderr()[-3000:]


def test_checkout_files_exist() -> None:
    # The copy the wheel is built from holds what a clean checkout holds.
    names = source_files()
    assert "pyproject.toml" in names and "otel_django/py.typed" in names
    assert not [n for n in names if n.startswith((".venv", "dist/", "build/"))]
