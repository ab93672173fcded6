"""Health probes through Django's test client and the project's real URLconf.

Liveness never touches a dependency and stays 200 whatever readiness says; readiness checks
every database, cache and registered check within HEALTH_CHECK_TIMEOUT_S and answers 503,
with the failing check named, when one fails, hangs or migrations are missing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from django.db.migrations.recorder import MigrationRecorder
from django.test import Client

from otel_django import runtime
from otel_django.config import Config
from otel_django.health import checks as health_checks
from otel_django.health import register_check, unregister_check
from tests.support.services import free_port

pytestmark = pytest.mark.smoke

TIMEOUT_S = 0.5


@pytest.fixture
def config(override_config: Callable[..., Config]) -> None:
    """A short readiness time budget, no Redis check, the migrations check on."""
    override_config(
        health_check_timeout_s=TIMEOUT_S,
        health_check_redis_url=None,
        health_check_migrations=True,
    )


@pytest.fixture
def sqlite_only(monkeypatch: pytest.MonkeyPatch, config: None) -> None:
    """Only the SQLite ``default`` alias is configured (the settings' ``postgres`` one is not)."""
    for alias in list(connections.settings):
        if alias != "default":
            monkeypatch.delitem(connections.settings, alias)


@pytest.fixture
def closed_port_alias(monkeypatch: pytest.MonkeyPatch, sqlite_only: None) -> str:
    """An extra database alias: PostgreSQL on a port where nothing listens."""
    import django.db.backends.postgresql.base  # noqa: F401 - psycopg must be importable

    settings_dict: dict[str, Any] = {
        **connections.settings["default"],
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "nothing",
        "USER": "postgres",
        "PASSWORD": "s3cr3t-pw-must-not-leak",
        "HOST": "127.0.0.1",
        "PORT": str(free_port()),
        "OPTIONS": {"connect_timeout": 2},
        "TEST": {},
    }
    monkeypatch.setitem(connections.settings, "unreachable", settings_dict)
    return "unreachable"


@pytest.fixture
def client() -> Client:
    return Client()


def get_json(client: Client, path: str) -> tuple[int, dict[str, Any]]:
    response = client.get(path)
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    return response.status_code, response.json()


def assert_alive(client: Client) -> None:
    assert get_json(client, "/healthz") == (200, {"status": "ok"})


def test_liveness_is_ok_without_database_access(client: Client) -> None:
    # No django_db mark: any database access would raise here.
    assert_alive(client)


def test_probes_answer_get_and_head_only(client: Client) -> None:
    for path in ("/healthz", "/readyz"):
        response = client.post(path)
        assert response.status_code == 405
        assert response["Allow"] == "GET, HEAD"


def assert_head_like_get(client: Client, path: str, status: int) -> None:
    get, head = client.get(path), client.head(path)
    assert get.status_code == head.status_code == status
    # never_cache: the time of each response; readiness: its timings' digits vary.
    differ = {"Expires", "Content-Length"}
    assert {k: v for k, v in head.headers.items() if k not in differ} == {
        k: v for k, v in get.headers.items() if k not in differ
    }
    assert int(head["Content-Length"]) > 0  # the length of a GET's body
    assert get.content and head.content == b""


@pytest.mark.django_db
def test_head_gets_the_status_and_headers_of_get(client: Client, sqlite_only: None) -> None:
    assert_head_like_get(client, "/healthz", 200)
    assert_head_like_get(client, "/readyz", 200)


def test_head_of_a_failing_readiness_is_503(
    client: Client, unrestricted_db: None, closed_port_alias: str
) -> None:
    assert_head_like_get(client, "/readyz", 503)


@pytest.mark.slow
def test_head_under_gunicorn(seeded: Path, tmp_path: Path) -> None:
    from tests.support.servers import copy_database, demo_env, gunicorn

    env = demo_env(copy_database(seeded, tmp_path), OTEL_TRACES_EXPORTER="none")
    server = gunicorn(free_port(), env, tmp_path / "logs", workers=1)
    try:
        server.wait_ready()
        for path in ("/healthz", "/readyz"):
            get_status, get_headers, get_body = server.get(path)
            head_status, head_headers, head_body = server.get(path, method="HEAD")
            assert get_status == head_status == 200, get_body
            assert get_body and head_body == b""
            for header in ("Content-Type", "Cache-Control"):
                assert head_headers[header] == get_headers[header]
            # The length of the body a GET gets (readiness timings vary in length).
            assert int(head_headers["Content-Length"]) > 0
            if path == "/healthz":
                assert head_headers["Content-Length"] == get_headers["Content-Length"]
    finally:
        server.stop()


def test_probes_are_exempt_from_login_required() -> None:
    from otel_django.health import views

    for view in (views.healthz, views.readyz):
        assert getattr(view, "login_required", True) is False


@pytest.mark.django_db
def test_probes_answer_behind_login_required_middleware(client: Client, sqlite_only: None) -> None:
    from django.conf import settings
    from django.test import override_settings

    middleware = [*settings.MIDDLEWARE, "django.contrib.auth.middleware.LoginRequiredMiddleware"]
    with override_settings(MIDDLEWARE=middleware):
        assert client.get("/products/").status_code == 302  # the middleware is active
        assert_alive(client)
        assert client.get("/readyz").status_code == 200


@pytest.mark.django_db
def test_readiness_ok_on_healthy_sqlite(client: Client, sqlite_only: None) -> None:
    status, body = get_json(client, "/readyz")
    assert status == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database:default", "cache:default", "migrations"}
    for result in body["checks"].values():
        assert result["status"] == "ok"
        assert "error" not in result
        assert result["duration_ms"] >= 0
    assert_alive(client)


@pytest.fixture
def unrestricted_db(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Test databases set up, and connections to any alias allowed from any thread.

    A ``django_db`` test case refuses connections to aliases it was not told about when it
    started, and the unreachable alias is added later, so this test does without one.
    """
    with django_db_blocker.unblock():
        yield


def test_readiness_fails_on_unreachable_database(
    client: Client, unrestricted_db: None, closed_port_alias: str
) -> None:
    status, body = get_json(client, "/readyz")
    assert status == 503
    assert body["status"] == "fail"
    failed = body["checks"][f"database:{closed_port_alias}"]
    assert failed["status"] == "fail"
    assert failed["error"].startswith("OperationalError"), failed
    assert body["checks"]["database:default"]["status"] == "ok"
    assert "s3cr3t-pw-must-not-leak" not in str(body)
    assert_alive(client)


@pytest.mark.django_db
def test_failing_custom_check(client: Client, sqlite_only: None) -> None:
    def broken() -> None:
        raise ConnectionError("payments down, token=abc123 url=https://u:p4ss@pay.example/")

    register_check("payments", broken)
    try:
        status, body = get_json(client, "/readyz")
    finally:
        unregister_check("payments")
    assert status == 503
    error = body["checks"]["payments"]["error"]
    assert error.startswith("ConnectionError: payments down")
    assert "abc123" not in error and "p4ss" not in error
    assert_alive(client)
    assert get_json(client, "/readyz")[0] == 200  # unregistered: ready again


@pytest.mark.django_db
def test_hanging_custom_check_times_out(client: Client, sqlite_only: None) -> None:
    release = threading.Event()
    register_check("hangs", lambda: release.wait(30) and None)
    try:
        started = time.monotonic()
        status, body = get_json(client, "/readyz")
        first_elapsed = time.monotonic() - started
        # Still hanging on the next probe: not started again, reported at once.
        status_again, body_again = get_json(client, "/readyz")
    finally:
        release.set()
        unregister_check("hangs")
    assert status == 503
    assert body["checks"]["hangs"]["status"] == "fail"
    assert body["checks"]["hangs"]["error"].startswith("timeout")
    assert body["checks"]["database:default"]["status"] == "ok"
    assert first_elapsed < 10  # the view returned long before the check would have
    assert status_again == 503
    assert body_again["checks"]["hangs"]["error"].startswith("timeout")
    assert_alive(client)


@pytest.mark.django_db(transaction=True)
def test_readiness_fails_with_unapplied_migrations(client: Client, sqlite_only: None) -> None:
    recorder = MigrationRecorder(connections["default"])
    recorder.record_unapplied("contenttypes", "0002_remove_content_type_name")
    try:
        status, body = get_json(client, "/readyz")
    finally:
        recorder.record_applied("contenttypes", "0002_remove_content_type_name")
    assert status == 503
    assert body["checks"]["migrations"]["status"] == "fail"
    assert "unapplied migrations: 1 on 'default'" in body["checks"]["migrations"]["error"]
    runtime.current().health.migrations_applied.clear()
    assert get_json(client, "/readyz")[0] == 200


@pytest.mark.postgres
@pytest.mark.django_db(databases=["default", "postgres"])
def test_readiness_ok_with_real_postgresql(client: Client, config: None) -> None:
    status, body = get_json(client, "/readyz")
    assert status == 200, body
    assert body["checks"]["database:postgres"]["status"] == "ok"


def test_register_check_rejects_builtin_names() -> None:
    for name in ("database:default", "cache:x", "migrations", "redis", " "):
        with pytest.raises(ValueError):
            register_check(name, lambda: None)


def test_sanitize_error_masks_credentials() -> None:
    exc = RuntimeError(
        'connection to "postgresql://app:hunter22@db:5432/shop" failed\n'
        "dsn: host=db password='x y' user=app; redis://:r3d1s@cache:6379/0"
    )
    text = health_checks.sanitize_error(exc)
    assert text.startswith("RuntimeError: connection to")
    assert "\n" not in text
    for secret in ("hunter22", "x y", "r3d1s"):
        assert secret not in text
    assert len(health_checks.sanitize_error(RuntimeError("x" * 5000))) < 250
