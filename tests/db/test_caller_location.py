"""Where a query came from (``code.*`` of slow queries and N+1 patterns): never a server's own
frames or the console-script wrapper that started it, under a real gunicorn as in stacks built
frame by frame."""

from __future__ import annotations

import json
import sysconfig
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from otel_django.db.insight import Location, caller_location
from tests.support.servers import copy_database, demo_env, gunicorn
from tests.support.services import free_port

SITE = "/srv/venv/lib/python3.11/site-packages"
SCRIPTS = sysconfig.get_path("scripts")
SERVERS = ("gunicorn", "uvicorn", "granian", "uwsgi", "waitress", "daphne", "hypercorn")


def located_through(stack: list[tuple[str, str]]) -> Location | None:
    """``caller_location()`` called from a stack of frames, one per ``(module, file)``,
    outermost first, in a thread of its own (so that no frame of the test is on it)."""
    found: list[Location | None] = []
    call: Callable[[], Any] = caller_location
    for n, (module, filename) in enumerate(reversed(stack), 1):
        body = "found.append(inner())" if n == len(stack) else "return inner()"
        namespace: dict[str, Any] = {"__name__": module, "inner": call, "found": found}
        exec(compile(f"def call():\n    {body}\n", filename, "exec"), namespace)
        call = namespace["call"]
    thread = threading.Thread(target=call)
    thread.start()
    thread.join()
    return found[0]


def test_a_console_script_wrapper_is_not_application_code() -> None:
    location = located_through(
        [
            ("__main__", f"{SCRIPTS}/gunicorn"),
            ("gunicorn.workers.sync", f"{SITE}/gunicorn/workers/sync.py"),
            ("django.core.handlers.base", f"{SITE}/django/core/handlers/base.py"),
            ("thirdparty.views", f"{SITE}/thirdparty/views.py"),
            ("django.db.models.query", f"{SITE}/django/db/models/query.py"),
        ]
    )
    assert location is not None
    assert (location.file, location.function) == (
        f"{SITE}/thirdparty/views.py",
        "thirdparty.views.call",
    )


@pytest.mark.parametrize("server", SERVERS)
def test_a_servers_own_frames_are_never_the_location(server: str) -> None:
    location = located_through(
        [
            (f"{server}.main", f"{SITE}/{server}/main.py"),
            (f"{server}.protocol", f"{SITE}/{server}/protocol.py"),
            ("django.core.handlers.base", f"{SITE}/django/core/handlers/base.py"),
            ("django.db.models.query", f"{SITE}/django/db/models/query.py"),
        ]
    )
    assert location is None  # a query from Django's own code: no location rather than a wrong one


def test_application_code_still_wins_over_the_libraries_it_calls() -> None:
    location = located_through(
        [
            ("__main__", f"{SCRIPTS}/gunicorn"),
            ("gunicorn.workers.sync", f"{SITE}/gunicorn/workers/sync.py"),
            ("shop.views", "/srv/app/shop/views.py"),
            ("thirdparty.serializers", f"{SITE}/thirdparty/serializers.py"),
        ]
    )
    assert location is not None and location.function == "shop.views.call"


THIRD_PARTY_VIEWS = """
from django.contrib.contenttypes.models import ContentType
from django.http import JsonResponse


def content_types(request):
    return JsonResponse({"count": len(list(ContentType.objects.order_by("id")))})
"""
URLS = """
from django.contrib.contenttypes.views import shortcut
from django.urls import include, path

import thirdparty_app.views

urlpatterns = [
    path("", include("otel_django.urls")),
    path("third-party/", thirdparty_app.views.content_types),
    path("django-only/<int:content_type_id>/<path:object_id>/", shortcut),
]
"""
SETTINGS = """
from demo.settings import *  # noqa: F403

ROOT_URLCONF = "location_urls"
"""


@pytest.mark.slow
def test_under_gunicorn_the_location_is_the_third_party_code_not_bin_gunicorn(
    seeded: Path, tmp_path: Path
) -> None:
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    (site / "thirdparty_app").mkdir(parents=True)
    (site / "thirdparty_app" / "__init__.py").write_text("")
    (site / "thirdparty_app" / "views.py").write_text(textwrap.dedent(THIRD_PARTY_VIEWS))
    project = tmp_path / "project"
    project.mkdir()
    (project / "location_urls.py").write_text(textwrap.dedent(URLS))
    (project / "location_settings.py").write_text(textwrap.dedent(SETTINGS))
    env = demo_env(
        copy_database(seeded, tmp_path),
        DJANGO_SETTINGS_MODULE="location_settings",
        OTEL_TRACES_EXPORTER="none",
        OTEL_DJANGO_SLOW_QUERY_MS="0",  # every query is slow: each logs its location
    )
    env["PYTHONPATH"] = f"{project}:{site}:{env['PYTHONPATH']}"
    server = gunicorn(free_port(), env, tmp_path / "logs", workers=1)
    try:
        server.wait_ready()
        assert server.get("/third-party/", {"X-Request-ID": "third-party"})[0] == 200
        assert server.get("/django-only/1/1/", {"X-Request-ID": "django-only"})[0] == 404
    finally:
        server.stop()
    slow = [
        line
        for line in map(json.loads, filter(None, server.stdout().splitlines()))
        if line.get("event") == "slow_query"
    ]
    [third_party] = [line for line in slow if line.get("request_id") == "third-party"]
    assert third_party["code.file.path"] == str(site / "thirdparty_app" / "views.py")
    assert third_party["code.function.name"] == "thirdparty_app.views.content_types"
    django_only = [line for line in slow if line.get("request_id") == "django-only"]
    assert django_only, server.stdout()[-2000:]
    assert all("code.file.path" not in line for line in django_only), django_only
