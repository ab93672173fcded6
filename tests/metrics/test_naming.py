"""otel_django's Prometheus unit mapping is upstream's.

Proves: for every unit the semantic conventions' metrics use (stable and incubating, the SDK's
own ``otel.sdk.*`` metrics among them), every unit and denominator either table knows, their
ratios, annotated forms and malformed ones, ``naming.unit_suffix`` gives what
opentelemetry-exporter-prometheus' ``map_unit`` gives; and the names of otel_django's own
metrics are the ones the README lists.
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import pkgutil
from typing import Any

import pytest

from otel_django.metrics.naming import PER_UNITS, UNITS, metric_name, unit_suffix

upstream = pytest.importorskip("opentelemetry.exporter.prometheus._mapping")


class _UnitRecorder:
    """A meter that records the unit of every instrument created on it."""

    def __init__(self) -> None:
        self.units: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        def create(*args: Any, **kwargs: Any) -> None:
            self.units.add(kwargs.get("unit", ""))

        return create


def semantic_convention_units() -> set[str]:
    import opentelemetry.semconv._incubating.metrics as incubating
    import opentelemetry.semconv.metrics as stable

    modules = [stable] + [
        importlib.import_module(f"{incubating.__name__}.{info.name}")
        for info in pkgutil.iter_modules(incubating.__path__)
    ]
    meter = _UnitRecorder()
    for module in modules:
        for name, create in vars(module).items():
            if name.startswith("create_") and callable(create):
                arguments = len(inspect.signature(create).parameters) - 1  # callbacks
                create(meter, *[()] * arguments)
    return meter.units


def every_unit() -> set[str]:
    known = set(UNITS) | set(PER_UNITS) | set(upstream._UNIT_MAPPINGS)
    known |= set(upstream._PER_UNIT_MAPPINGS)
    ratios = {f"{a}/{b}" for a, b in itertools.product(known | {""}, known)}
    odd = {"", "/", "s/", "/s", "{a}s{b}", "{req}/s", "_x_", "foo bar", "a/b/c", "By/ s", "µs"}
    return semantic_convention_units() | known | ratios | {f"{{x}}{u}" for u in known} | odd


def test_semantic_conventions_are_read() -> None:
    units = semantic_convention_units()
    assert {"s", "By", "1", "{request}", "By/s"} <= units and len(units) > 30


def test_unit_mapping_is_upstreams() -> None:
    units = every_unit()
    assert len(units) > 900
    differences = {u: (unit_suffix(u), upstream.map_unit(u)) for u in units}
    assert {u: d for u, d in differences.items() if d[0] != d[1]} == {}


@pytest.mark.parametrize(
    ("unit", "suffix"),
    [
        ("By/m", "bytes_per_minute"),
        ("TiBy", "tibibytes"),
        ("By/s", "bytes_per_second"),
        ("{request}", ""),
        ("1", ""),
        ("m/s", "meters_per_second"),
    ],
)
def test_units_drifted_before(unit: str, suffix: str) -> None:
    assert unit_suffix(unit) == suffix


def test_otel_django_metric_names() -> None:
    assert metric_name("http.server.request.duration", "s", False) == (
        "http_server_request_duration_seconds"
    )
    assert metric_name("http.server.request.body.size", "By", False) == (
        "http_server_request_body_size_bytes"
    )
    assert metric_name("otel_django.cache.requests", "{request}", True) == (
        "otel_django_cache_requests_total"
    )
    assert metric_name("process.cpu.time", "s", True) == "process_cpu_time_seconds_total"
    assert metric_name("db.client.connection.count", "{connection}", False) == (
        "db_client_connection_count"
    )
    assert metric_name("otel_django.db.queries_per_request", "{query}", False) == (
        "otel_django_db_queries_per_request"
    )
