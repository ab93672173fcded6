"""Connection pools.

* ``db.client.connection.count`` (``db.client.connection.state`` idle|used) and
  ``db.client.connection.max``, per ``db.client.connection.pool.name``, read when collected
  from every SQLAlchemy engine's pool (``QueuePool`` and its kin) and from Django's psycopg
  pools (``OPTIONS: {"pool": True}``, Django 5.1+). Pools that keep no count (``NullPool``,
  ``StaticPool``) report nothing.

(``db.client.operation.duration`` of SQLAlchemy statements is recorded with the ORM's, in
``otel_django.db``.)
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from .. import _compat

logger = logging.getLogger("otel_django.metrics")

_engines: weakref.WeakSet[Any] = weakref.WeakSet()


def _pool_name(url: Any) -> str:
    """``server.address:server.port/db.namespace``, as the conventions suggest; no password."""
    return _name(url.host, url.port, url.database)


def _name(host: object, port: object, database: object) -> str:
    if not host:
        return str(database or "")
    return f"{host}:{port}/{database or ''}" if port else f"{host}/{database or ''}"


def sqlalchemy_pools() -> Iterable[tuple[str, int, int, int | None]]:
    """(pool name, idle, used, max or None) for each engine with a counting pool."""
    for engine in list(_engines):
        pool = engine.pool
        checkedout = getattr(pool, "checkedout", None)
        checkedin = getattr(pool, "checkedin", None)
        if not callable(checkedout) or not callable(checkedin):
            continue
        try:
            used, idle = int(checkedout()), int(checkedin())
            maximum: int | None = None
            overflow = _compat.pool_max_overflow(pool)
            if callable(getattr(pool, "size", None)) and overflow is not None:
                maximum = int(pool.size()) + overflow
        except Exception:
            logger.debug("pool of %s cannot be read", engine, exc_info=True)
            continue
        yield _pool_name(engine.url), idle, used, maximum


def django_pools() -> Iterable[tuple[str, int, int, int | None]]:
    """The same for Django's psycopg pools that exist (never creates one)."""
    from django.db import connections

    for alias in connections:
        settings = connections.settings[alias]
        if not settings.get("OPTIONS", {}).get("pool"):
            continue
        wrapper_class = type(connections[alias])
        pool = _compat.psycopg_pool(wrapper_class, alias)
        if pool is None or not callable(getattr(pool, "get_stats", None)):
            continue
        stats = pool.get_stats()
        size = int(stats.get("pool_size", 0))
        idle = int(stats.get("pool_available", 0))
        maximum = stats.get("pool_max")
        name = _name(settings.get("HOST"), settings.get("PORT"), settings.get("NAME"))
        yield name, idle, max(size - idle, 0), int(maximum) if maximum is not None else None


def _all_pools() -> list[tuple[str, int, int, int | None]]:
    pools: list[tuple[str, int, int, int | None]] = []
    for source in (sqlalchemy_pools, django_pools):
        try:
            pools.extend(source())
        except Exception:  # a pool that cannot be read must not fail the scrape
            logger.debug("connection pools cannot be read", exc_info=True)
            continue
    return pools


def observe_count(options: CallbackOptions) -> Iterable[Observation]:
    for name, idle, used, _ in _all_pools():
        yield Observation(
            idle, {"db.client.connection.pool.name": name, "db.client.connection.state": "idle"}
        )
        yield Observation(
            used, {"db.client.connection.pool.name": name, "db.client.connection.state": "used"}
        )


def observe_max(options: CallbackOptions) -> Iterable[Observation]:
    for name, _, _, maximum in _all_pools():
        if maximum is not None:
            yield Observation(maximum, {"db.client.connection.pool.name": name})


def _track_engine(connection: Any, *args: Any) -> None:
    _engines.add(connection.engine)


def track_sqlalchemy_engines() -> None:
    """Remembers every SQLAlchemy engine that connects, to read its pool. No-op without it."""
    try:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine
    except ImportError:
        return
    if not event.contains(Engine, "engine_connect", _track_engine):
        event.listen(Engine, "engine_connect", _track_engine)


def instrument_pools(meter: Meter) -> None:
    meter.create_observable_up_down_counter(
        "db.client.connection.count", callbacks=[observe_count], unit="{connection}",
        description="Connections in each state, per connection pool.",
    )  # fmt: skip
    meter.create_observable_up_down_counter(
        "db.client.connection.max", callbacks=[observe_max], unit="{connection}",
        description="Most connections each pool allows.",
    )  # fmt: skip
