"""Readiness checks: each database, each cache, Redis, migrations, and the app's own checks.

A check is a callable taking no argument that returns when the dependency is usable and
raises when it is not. :func:`run_checks` runs every check at once in a small pool of daemon
threads shared by the process and waits at most the configured time budget: a dependency that
hangs makes its check fail with ``timeout`` but can neither hang the probe nor pile up threads
(a check still running from an earlier probe is not started again, it fails at once).

Error messages are meant for a probe response that anybody reaching the pod can read: they
hold the exception type and a short message with URLs' credentials, ``password=`` pairs and
every configured database or cache password masked.

What the checks keep for the process (the registered checks, the pool, the databases seen
migrated) is a :class:`HealthState`, held by the process's runtime
(:attr:`otel_django.runtime.Runtime.health`).
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from django.db import DEFAULT_DB_ALIAS, DatabaseError

__all__ = [
    "CheckResult",
    "HealthState",
    "builtin_checks",
    "register_check",
    "registered_checks",
    "run_checks",
    "sanitize_error",
    "unregister_check",
]

log = logging.getLogger("otel_django.health")

Check = Callable[[], None]
Status = Literal["ok", "fail"]

_MAX_ERROR_LENGTH = 200
_MAX_WORKERS = 8


@dataclass(frozen=True)
class CheckResult:
    status: Status
    duration_ms: float
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"status": self.status, "duration_ms": round(self.duration_ms, 1)}
        if self.error is not None:
            data["error"] = self.error
        return data


# -- the app's own checks


def register_check(name: str, check: Check) -> None:
    """Adds a readiness check: ``check()`` returns when ready and raises when not.

    Registering a name again replaces the earlier check, so calling this from
    ``AppConfig.ready()`` is safe. Names of the built-in checks (``database:<alias>``,
    ``cache:<alias>``, ``redis``, ``migrations``) cannot be taken.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError("register_check: name must be a non-empty string")
    if not callable(check):
        raise TypeError("register_check: check must be callable")
    name = name.strip()
    if name in {"redis", "migrations"} or name.startswith(("database:", "cache:")):
        raise ValueError(f"register_check: {name!r} is reserved for a built-in check")
    state = _state()
    with state.lock:
        state.registry[name] = check


def unregister_check(name: str) -> None:
    """Removes a check added with :func:`register_check`; unknown names are ignored."""
    state = _state()
    with state.lock:
        state.registry.pop(name, None)


def registered_checks() -> dict[str, Check]:
    state = _state()
    with state.lock:
        return dict(state.registry)


def _state() -> HealthState:
    from .. import runtime

    return runtime.current().health


# -- sanitizing error messages

_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@")
_SECRET_PAIRS = re.compile(
    r"(?P<key>\b(?:password|passwd|pwd|secret|token|api[_-]?key|auth)\b\s*[=:]\s*)"
    r"(?P<value>'[^']*'|\"[^\"]*\"|[^\s,;&)]+)",
    re.IGNORECASE,
)


def _configured_secrets() -> list[str]:
    """Passwords and URLs found in DATABASES and CACHES: never echoed in an error."""
    from django.conf import settings

    secrets: list[str] = []
    for db in getattr(settings, "DATABASES", {}).values():
        password = db.get("PASSWORD")
        if isinstance(password, str) and password:
            secrets.append(password)
    for cache in getattr(settings, "CACHES", {}).values():
        locations = cache.get("LOCATION")
        if isinstance(locations, str):
            locations = [locations]
        for location in locations or ():
            if isinstance(location, str) and "@" in location:
                secrets.append(location)
        options = cache.get("OPTIONS") or {}
        password = options.get("password") if isinstance(options, dict) else None
        if isinstance(password, str) and password:
            secrets.append(password)
    return secrets


def sanitize_error(exc: BaseException, extra_secrets: Iterable[str] = ()) -> str:
    """``"<ExceptionType>: <short message>"`` with credentials masked."""
    message = " ".join(str(exc).split())
    for secret in sorted({*extra_secrets, *_configured_secrets()}, key=len, reverse=True):
        if len(secret) >= 3:
            message = message.replace(secret, "***")
    message = _URL_CREDENTIALS.sub(r"\g<scheme>***@", message)
    message = _SECRET_PAIRS.sub(r"\g<key>***", message)
    if len(message) > _MAX_ERROR_LENGTH:
        message = message[: _MAX_ERROR_LENGTH - 3] + "..."
    name = type(exc).__name__
    return f"{name}: {message}" if message else name


# -- built-in checks


def check_database(alias: str) -> None:
    """Opens a connection of this thread to ``alias`` and runs ``SELECT 1``; then closes it."""
    from django.db import connections

    connection = connections[alias]
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        # The pool thread must not keep a connection Django's request cycle never recycles.
        try:
            connection.close()
        finally:
            del connections[alias]


def check_cache(alias: str) -> None:
    """Writes a probe key, reads it back and deletes it."""
    from django.core.cache import caches

    cache = caches[alias]
    key = f"otel_django:readyz:{uuid.uuid4().hex}"
    value = uuid.uuid4().hex
    cache.set(key, value, timeout=30)
    try:
        if cache.get(key) != value:
            raise RuntimeError("the value written was not read back")
    finally:
        cache.delete(key)


def check_redis(url: str, timeout_s: float) -> None:
    if importlib.util.find_spec("redis") is None:
        raise RuntimeError("HEALTH_CHECK_REDIS_URL is set but the redis package is not installed")
    import redis

    client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        if not client.ping():
            raise RuntimeError("PING was not answered with PONG")
    finally:
        client.close()


def check_migrations() -> None:
    """Fails while a migration known to the code is not applied.

    Checks the default database, and every other reachable one that has a
    ``django_migrations`` table.
    Once a database was seen fully migrated the answer is kept for the life of the process:
    new migrations arrive with new code, that is a new process.
    """
    from django.db import connections
    from django.db.migrations.recorder import MigrationRecorder

    from ..db.migrations import unapplied_count

    state = _state()
    unapplied: dict[str, int] = {}
    for alias in connections:
        with state.lock:
            if alias in state.migrations_applied:
                continue
        connection = connections[alias]
        try:
            if alias != DEFAULT_DB_ALIAS:
                try:
                    if not MigrationRecorder(connection).has_table():
                        continue  # never migrated: not managed by this project's migrations
                except DatabaseError:
                    continue  # unreachable: its database check reports that
            count = unapplied_count(connection)
        finally:
            try:
                connection.close()
            finally:
                del connections[alias]
        if count:
            unapplied[alias] = count
        else:
            with state.lock:
                state.migrations_applied.add(alias)
    if unapplied:
        detail = ", ".join(f"{count} on {alias!r}" for alias, count in sorted(unapplied.items()))
        raise RuntimeError(f"unapplied migrations: {detail}")


def builtin_checks() -> dict[str, Check]:
    """The checks readiness runs for this project's settings and configuration."""
    from django.conf import settings
    from django.db import connections

    from .. import runtime

    config = runtime.current().config
    checks: dict[str, Check] = {}
    for alias in connections:
        checks[f"database:{alias}"] = _bind(check_database, alias)
    for alias, cache_settings in getattr(settings, "CACHES", {}).items():
        if str(cache_settings.get("BACKEND", "")).endswith(".DummyCache"):
            continue  # a cache that stores nothing by design cannot be "not ready"
        checks[f"cache:{alias}"] = _bind(check_cache, alias)
    if config.health.redis_url:
        url, timeout_s = config.health.redis_url, config.health.timeout_s
        checks["redis"] = lambda: check_redis(url, timeout_s)
    if config.health.migrations:
        checks["migrations"] = check_migrations
    return checks


def _bind(function: Callable[[str], None], alias: str) -> Check:
    def check() -> None:
        function(alias)

    return check


# -- running checks: a small pool of daemon threads, shared by the process


class _Pool:
    """Daemon worker threads, started on demand up to ``max_workers``.

    Not ``ThreadPoolExecutor``: its threads are joined at interpreter exit, so one hung check
    would stall the shutdown of the whole worker process.
    """

    def __init__(self, max_workers: int) -> None:
        self._max_workers = max_workers
        self._lock = threading.Lock()
        self._jobs: list[tuple[concurrent.futures.Future[None], Check]] = []
        self._ready = threading.Condition(self._lock)
        self._threads = 0
        self._idle = 0

    def submit(self, check: Check) -> concurrent.futures.Future[None]:
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        with self._lock:
            self._jobs.append((future, check))
            if self._idle < len(self._jobs) and self._threads < self._max_workers:
                self._threads += 1
                thread = threading.Thread(
                    target=self._work, name=f"otel-django-health-{self._threads}", daemon=True
                )
                thread.start()
            self._ready.notify()
        return future

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
                while not self._jobs:
                    self._ready.wait()
                self._idle -= 1
                future, check = self._jobs.pop(0)
            if not future.set_running_or_notify_cancel():
                continue
            try:
                check()
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(None)


class HealthState:
    """The checks' process state: registered checks, the pool, the checks still running,
    the databases seen fully migrated."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.registry: dict[str, Check] = {}
        self.migrations_applied: set[str] = set()
        self.pool_lock = threading.Lock()
        self.in_flight: dict[str, concurrent.futures.Future[None]] = {}
        self._pool: _Pool | None = None
        self._pool_pid = 0

    def pool(self) -> _Pool:
        """The pool of this process (caller holds ``pool_lock``)."""
        if self._pool is None or self._pool_pid != os.getpid():  # threads do not survive a fork
            self._pool, self._pool_pid = _Pool(_MAX_WORKERS), os.getpid()
            self.in_flight.clear()
        return self._pool


def run_checks(
    checks: dict[str, Check], timeout_s: float, state: HealthState | None = None
) -> dict[str, CheckResult]:
    """Runs every check concurrently; returns after at most ``timeout_s`` (plus scheduling)."""
    state = state or _state()
    started = time.monotonic()
    results: dict[str, CheckResult] = {}
    futures: dict[str, concurrent.futures.Future[None]] = {}
    with state.pool_lock:
        pool = state.pool()
        for name, check in checks.items():
            previous = state.in_flight.get(name)
            if previous is not None and not previous.done():
                results[name] = CheckResult(
                    "fail", 0.0, "timeout: still running since an earlier probe"
                )
                continue
            futures[name] = state.in_flight[name] = pool.submit(check)
    finished_at: dict[concurrent.futures.Future[None], float] = {}
    for future in futures.values():
        future.add_done_callback(lambda f: finished_at.setdefault(f, time.monotonic()))
    concurrent.futures.wait(futures.values(), timeout=timeout_s)
    now = time.monotonic()
    for name, future in futures.items():
        duration_ms = (finished_at.get(future, now) - started) * 1000.0
        if not future.done():
            results[name] = CheckResult(
                "fail", duration_ms, f"timeout: no answer within {timeout_s:g} s"
            )
            continue
        exc = future.exception()
        if exc is None:
            results[name] = CheckResult("ok", duration_ms)
        else:
            results[name] = CheckResult("fail", duration_ms, sanitize_error(exc))
    for name, result in results.items():
        if result.status != "ok":
            log.warning("readiness check %s failed: %s", name, result.error)
    return {name: results[name] for name in checks}


def readiness() -> tuple[bool, dict[str, CheckResult]]:
    """Runs the built-in and registered checks with the configured time budget."""
    from .. import runtime

    current = runtime.current()
    checks: dict[str, Check] = {**builtin_checks(), **registered_checks()}
    results = run_checks(checks, current.config.health.timeout_s, current.health)
    return all(r.status == "ok" for r in results.values()), results
