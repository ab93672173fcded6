"""Django cache metrics: ``otel_django.cache.requests`` per alias, backend, operation, result.

Each cache object Django creates (``caches[alias]``, one per thread) gets its operations
wrapped on the instance, so every backend is covered (locmem, Redis, database, file,
memcached, custom) and nothing else is touched. The wrappers only bump a plain counter
(a lock and a dict increment, well under a microsecond); an observable counter reports the
totals when metrics are collected. Backends implement some operations with others
(``has_key`` with ``get``, ``get_or_set`` with ``get`` and ``add``): only the operation the
caller asked for is counted.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from ..semconv import error_type

OPERATIONS = (
    "get",
    "get_many",
    "has_key",
    "get_or_set",
    "set",
    "set_many",
    "add",
    "delete",
    "delete_many",
    "touch",
    "incr",
    "decr",
    "clear",
)
HIT, MISS = "hit", "miss"
_MISSING = object()

# (alias, backend, operation, result or "", error type or "")
Key = tuple[str, str, str, str, str]


class _Guard(threading.local):
    active = False


_guard = _Guard()


class CacheCounts:
    """Totals of cache operations, observed by the ``otel_django.cache.requests`` counter."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[Key, int] = {}

    def add(self, key: Key, amount: int = 1) -> None:
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + amount

    def observe(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            items = list(self._counts.items())
        for (alias, backend, operation, result, error), count in items:
            attributes = {
                "otel_django.cache.alias": alias,
                "otel_django.cache.backend": backend,
                "otel_django.cache.operation": operation,
            }
            if result:
                attributes["otel_django.cache.result"] = result
            if error:
                attributes["error.type"] = error
            yield Observation(count, attributes)


def _counted(
    original: Callable[..., Any], counts: CacheCounts, alias: str, backend: str, operation: str
) -> Callable[..., Any]:
    ok: Key = (alias, backend, operation, "", "")

    @functools.wraps(original)
    def call(*args: Any, **kwargs: Any) -> Any:
        if _guard.active:
            return original(*args, **kwargs)
        _guard.active = True
        try:
            result = original(*args, **kwargs)
        except Exception as exc:
            counts.add((alias, backend, operation, "", error_type(exc)))
            raise
        finally:
            _guard.active = False
        counts.add(ok)
        return result

    return call


def _read(
    original: Callable[..., Any], counts: CacheCounts, alias: str, backend: str, operation: str
) -> Callable[..., Any]:
    hit: Key = (alias, backend, operation, HIT, "")
    miss: Key = (alias, backend, operation, MISS, "")

    def failed(exc: Exception) -> None:
        counts.add((alias, backend, operation, "", error_type(exc)))

    if operation == "get":

        @functools.wraps(original)
        def get(key: Any, default: Any = None, version: Any = None) -> Any:
            if _guard.active:
                return original(key, default, version=version)
            _guard.active = True
            try:
                value = original(key, _MISSING, version=version)
            except Exception as exc:
                failed(exc)
                raise
            finally:
                _guard.active = False
            if value is _MISSING:
                counts.add(miss)
                return default
            counts.add(hit)
            return value

        return get

    if operation == "get_many":

        @functools.wraps(original)
        def get_many(keys: Any, version: Any = None) -> Any:
            if _guard.active:
                return original(keys, version=version)
            keys = list(keys)
            _guard.active = True
            try:
                found = original(keys, version=version)
            except Exception as exc:
                failed(exc)
                raise
            finally:
                _guard.active = False
            hits = len(found)
            if hits:
                counts.add(hit, hits)
            if len(set(keys)) > hits:
                counts.add(miss, len(set(keys)) - hits)
            return found

        return get_many

    if operation == "has_key":

        @functools.wraps(original)
        def has_key(key: Any, version: Any = None) -> Any:
            if _guard.active:
                return original(key, version=version)
            _guard.active = True
            try:
                present = original(key, version=version)
            except Exception as exc:
                failed(exc)
                raise
            finally:
                _guard.active = False
            counts.add(hit if present else miss)
            return present

        return has_key

    @functools.wraps(original)
    def get_or_set(key: Any, default: Any, *args: Any, **kwargs: Any) -> Any:
        if _guard.active:
            return original(key, default, *args, **kwargs)
        produced = False

        def produce() -> Any:
            nonlocal produced
            produced = True
            return default() if callable(default) else default

        _guard.active = True
        try:
            value = original(key, produce, *args, **kwargs)
        except Exception as exc:
            failed(exc)
            raise
        finally:
            _guard.active = False
        counts.add(miss if produced else hit)
        return value

    return get_or_set


READS = {"get": _read, "get_many": _read, "has_key": _read, "get_or_set": _read}


def wrap_cache(cache: Any, alias: str, counts: CacheCounts) -> Any:
    """Counts the operations of one cache object (idempotent); returns it."""
    if getattr(cache, "_otel_django_counted", False):
        return cache
    backend = type(cache).__name__
    for operation in OPERATIONS:
        original = getattr(cache, operation, None)
        if original is None:
            continue
        factory = READS.get(operation, _counted)
        setattr(cache, operation, factory(original, counts, alias, backend, operation))
    cache._otel_django_counted = True
    return cache


def instrument_caches(meter: Meter) -> CacheCounts:
    """Counts the operations of every cache object Django creates. Idempotent: the counts
    live on the patched ``CacheHandler.create_connection``."""
    from django.core.cache import CacheHandler, caches

    installed: CacheCounts | None = getattr(CacheHandler.create_connection, "_otel_django", None)
    if installed is not None:
        return installed
    counts = CacheCounts()
    meter.create_observable_counter(
        "otel_django.cache.requests",
        callbacks=[counts.observe],
        unit="{request}",
        description="Django cache operations, by alias, backend, operation and hit or miss.",
    )
    original = CacheHandler.create_connection

    def create_connection(self: CacheHandler, alias: str) -> Any:
        return wrap_cache(original(self, alias), alias, counts)

    create_connection._otel_django = counts  # type: ignore[attr-defined]
    CacheHandler.create_connection = create_connection  # type: ignore[method-assign]
    for alias in caches:  # cache objects are lazy: creating this thread's costs nothing
        wrap_cache(caches[alias], alias, counts)
    return counts
