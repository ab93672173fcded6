"""Django-side instruments: caches, process, migrations, pools, SQLAlchemy durations.

Proves: cache operations are counted per alias, backend and operation with hit/miss on reads
(locmem and Redis-backed caches), and an operation built on others (``has_key``,
``get_or_set``) is counted once; failures carry ``error.type``; process metrics have sane
values; unapplied migrations are counted per database when scraped, and a database that is
down or hangs leaves its series out without failing the scrape; SQLAlchemy statements get
``db.client.operation.duration`` and pools report used/idle/max, as do Django psycopg pools.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from django.db import connection, connections
from django.test import override_settings

from otel_django.metrics import migrations, pools
from tests.support.metrics import scrape, total
from tests.support.services import REDIS_URL, free_port

CACHE = "otel_django_cache_requests_total"


def cache_counts(text: str, backend: str) -> dict[tuple[str, str], float]:
    from tests.support.metrics import samples

    counts: dict[tuple[str, str], float] = {}
    for name, labels, value in samples(text):
        if name == CACHE and labels.get("otel_django_cache_backend") == backend:
            key = (
                labels["otel_django_cache_operation"],
                labels.get("otel_django_cache_result", ""),
            )
            counts[key] = counts.get(key, 0) + value
    return counts


def exercise(cache: Any) -> None:
    cache.delete_many(["a", "b", "c", "n"])
    assert cache.get("a") is None  # miss
    cache.set("a", 1)
    assert cache.get("a") == 1  # hit
    assert cache.get("zz", "dflt") == "dflt"  # miss, default kept
    assert cache.get_many(["a", "b", "c"]) == {"a": 1}  # 1 hit, 2 misses
    assert cache.has_key("a") and not cache.has_key("b")  # hit, miss
    assert cache.get_or_set("c", lambda: 3) == 3  # miss
    assert cache.get_or_set("c", 4) == 3  # hit
    assert cache.add("a", 5) is False
    cache.set("n", 1)
    assert cache.incr("n") == 2


def delta(
    after: dict[tuple[str, str], float], before: dict[tuple[str, str], float]
) -> dict[tuple[str, str], float]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


EXPECTED = {
    ("delete_many", ""): 1,
    ("get", "miss"): 2,
    ("get", "hit"): 1,
    ("set", ""): 2,
    ("get_many", "hit"): 1,
    ("get_many", "miss"): 2,
    ("has_key", "hit"): 1,
    ("has_key", "miss"): 1,
    ("get_or_set", "miss"): 1,
    ("get_or_set", "hit"): 1,
    ("add", ""): 1,
    ("incr", ""): 1,
}


@pytest.mark.django_db
def test_locmem_cache_hits_and_misses() -> None:
    before = cache_counts(scrape(), "LocMemCache")
    exercise(caches["default"])
    assert delta(cache_counts(scrape(), "LocMemCache"), before) == EXPECTED


@pytest.mark.redis
@pytest.mark.django_db
def test_redis_cache_hits_and_misses() -> None:
    backend = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    with override_settings(
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "redis": backend,
        }
    ):
        before = cache_counts(scrape(), "RedisCache")
        exercise(caches["redis"])
        after = cache_counts(scrape(), "RedisCache")
        assert delta(after, before) == EXPECTED
        text = scrape()
        assert 'otel_django_cache_alias="redis"' in text


@pytest.mark.django_db
def test_cache_failures_carry_error_type() -> None:
    port = free_port()  # nothing listens there
    backend = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{port}/0",
        "OPTIONS": {"socket_connect_timeout": 0.5},
    }
    with override_settings(
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "down": backend,
        }
    ):
        with pytest.raises(Exception):  # noqa: B017 - whatever redis-py raises
            caches["down"].get("x")
        text = scrape()
    assert (
        total(
            text,
            CACHE,
            {
                "otel_django_cache_alias": "down",
                "otel_django_cache_operation": "get",
                # Fully qualified, as the semantic conventions ask.
                "error_type": "redis.exceptions.ConnectionError",
            },
        )
        == 1
    )


@pytest.mark.django_db
def test_process_metrics() -> None:
    text = scrape()
    assert total(text, "process_cpu_time_seconds_total", {"cpu_mode": "user"}) > 0
    assert total(text, "process_memory_usage_bytes") > 10_000_000
    assert total(text, "process_thread_count") >= 1
    assert total(text, "cpython_gc_collections_total", {"cpython_gc_generation": "0"}) >= 0


@pytest.mark.django_db(transaction=True)  # the scrape reads from its own thread
def test_unapplied_migrations_counted_when_scraped() -> None:
    assert migrations.unapplied_migrations()["default"] == 0
    text = scrape()
    assert (
        total(text, "otel_django_db_migrations_unapplied", {"otel_django_db_alias": "default"}) == 0
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, app, name FROM django_migrations WHERE app = 'shop'")
        rows = cursor.fetchall()
        cursor.execute("DELETE FROM django_migrations WHERE app = 'shop'")
    try:
        text = scrape()
        assert total(
            text, "otel_django_db_migrations_unapplied", {"otel_django_db_alias": "default"}
        ) == len(rows)
    finally:
        with connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO django_migrations (id, app, name, applied) "
                "VALUES (%s, %s, %s, CURRENT_TIMESTAMP)",
                rows,
            )


@pytest.fixture
def postgres_down(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    settings = dict(connections.settings["postgres"])
    settings.update(PORT=str(free_port()), OPTIONS={"connect_timeout": 1})
    monkeypatch.setitem(connections.settings, "postgres", settings)
    yield


@pytest.mark.django_db
def test_database_down_leaves_its_series_out(postgres_down: None) -> None:
    counts = migrations.unapplied_migrations()
    assert "postgres" not in counts and counts["default"] == 0
    text = scrape()
    assert (
        total(text, "otel_django_db_migrations_unapplied", {"otel_django_db_alias": "default"}) == 0
    )
    assert 'otel_django_db_alias="postgres"' not in text


@pytest.mark.django_db
def test_database_that_hangs_does_not_hold_the_scrape() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    def hang() -> dict[str, int]:
        time.sleep(migrations.TIMEOUT_S + 1.5)
        return {"default": 0}

    # The gauge as otel_django registers it, with a count that hangs, on a provider of its own.
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    gauge = migrations.UnappliedMigrations(count=hang)
    migrations.instrument_migrations(provider.get_meter("tests"), gauge)

    def scrape_points() -> list[object]:
        data = reader.get_metrics_data()
        return [
            point
            for resource_metrics in (data.resource_metrics if data else ())
            for scope_metrics in resource_metrics.scope_metrics
            for metric in scope_metrics.metrics
            if metric.name == "otel_django.db.migrations.unapplied"
            for point in metric.data.data_points
        ]

    try:
        start = time.monotonic()
        assert scrape_points() == []
        assert time.monotonic() - start < migrations.TIMEOUT_S + 1.0
        # The check still running is not started a second time.
        assert scrape_points() == [] and time.monotonic() - start < migrations.TIMEOUT_S + 1.4
        time.sleep(1.6)
    finally:
        provider.shutdown()


@pytest.mark.django_db
def test_sqlalchemy_durations_and_pool(tmp_path: Path) -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    engine = sqlalchemy.create_engine(
        f"sqlite:///{tmp_path / 'sa.sqlite3'}", pool_size=3, max_overflow=2
    )
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text("CREATE TABLE sa_items (id INTEGER)"))
        for _ in range(3):
            conn.execute(sqlalchemy.text("SELECT count(*) FROM sa_items")).scalar_one()
        with pytest.raises(sqlalchemy.exc.OperationalError):
            conn.execute(sqlalchemy.text("SELECT * FROM no_such_table"))
        text = scrape()
        name = str(tmp_path / "sa.sqlite3")
        assert (
            total(
                text,
                "db_client_connection_count",
                {"db_client_connection_pool_name": name, "db_client_connection_state": "used"},
            )
            == 1
        )
    text = scrape()
    assert (
        total(
            text,
            "db_client_connection_count",
            {"db_client_connection_pool_name": name, "db_client_connection_state": "idle"},
        )
        == 1
    )
    assert (
        total(
            text,
            "db_client_connection_count",
            {"db_client_connection_pool_name": name, "db_client_connection_state": "used"},
        )
        == 0
    )
    assert total(text, "db_client_connection_max", {"db_client_connection_pool_name": name}) == 5
    selects = {
        "db_system_name": "sqlite",
        "db_operation_name": "SELECT",
        "db_collection_name": "sa_items",
    }
    assert total(text, "db_client_operation_duration_seconds_count", selects) == 3
    assert (
        total(
            text,
            "db_client_operation_duration_seconds_count",
            {"db_collection_name": "no_such_table", "error_type": "sqlite3.OperationalError"},
        )
        == 1
    )
    engine.dispose()


class FakePsycopgPool:
    def get_stats(self) -> dict[str, int]:
        return {"pool_min": 1, "pool_max": 7, "pool_size": 3, "pool_available": 2}


@pytest.mark.django_db
def test_django_psycopg_pool_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = dict(connections.settings["postgres"])
    settings["OPTIONS"] = {**settings.get("OPTIONS", {}), "pool": True}
    monkeypatch.setitem(connections.settings, "postgres", settings)
    wrapper_class = type(connections["postgres"])
    monkeypatch.setattr(
        wrapper_class, "_connection_pools", {"postgres": FakePsycopgPool()}, raising=False
    )
    found = [p for p in pools.django_pools()]
    name = f"{settings['HOST']}:{settings['PORT']}/{settings['NAME']}"
    assert found == [(name, 2, 1, 7)]
    text = scrape()
    assert (
        total(
            text,
            "db_client_connection_count",
            {"db_client_connection_pool_name": name, "db_client_connection_state": "used"},
        )
        == 1
    )
    assert total(text, "db_client_connection_max", {"db_client_connection_pool_name": name}) == 7


@pytest.mark.postgres
@pytest.mark.django_db(databases=["default", "postgres"], transaction=True)
def test_real_django_psycopg_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("psycopg_pool")
    settings = dict(connections.settings["postgres"])
    settings["OPTIONS"] = {**settings.get("OPTIONS", {}), "pool": {"min_size": 1, "max_size": 4}}
    # A host name of its own, so that no SQLAlchemy pool of another test has the same pool name.
    settings["HOST"] = "localhost"
    monkeypatch.setitem(connections.settings, "postgres", settings)
    name = f"{settings['HOST']}:{settings['PORT']}/{settings['NAME']}"
    pooled = connections.create_connection("postgres")  # a wrapper of its own, pooled
    try:
        with pooled.cursor() as cursor:
            cursor.execute("SELECT 1")
            text = scrape()
        assert (
            total(text, "db_client_connection_max", {"db_client_connection_pool_name": name}) == 4
        )
        used = total(
            text,
            "db_client_connection_count",
            {"db_client_connection_pool_name": name, "db_client_connection_state": "used"},
        )
        idle = total(
            text,
            "db_client_connection_count",
            {"db_client_connection_pool_name": name, "db_client_connection_state": "idle"},
        )
        assert used >= 1 and used + idle <= 4  # the pool may be opening more in the background
    finally:
        pooled.close()
        pooled.close_pool()
