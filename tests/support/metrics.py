"""Reading metrics: scraping ``/metrics`` through the test client, samples of an exposition,
and the points of the in-process reader."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pytest
from django.test import Client

from otel_django import runtime
from tests.support.auth import basic

__all__ = ["counter_points", "counter_total", "samples", "scrape", "series", "total"]

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_EXEMPLAR = re.compile(r" # \{[^}]*\} \S+( \S+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(client: Client | None = None, **headers: str) -> str:
    response = (client or Client()).get("/metrics", HTTP_AUTHORIZATION=basic(), **headers)
    assert response.status_code == 200, response.content[:200]
    return response.content.decode()


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample line of an exposition: (name, labels, value), exemplars left out."""
    found = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        line = _EXEMPLAR.sub("", line)  # OpenMetrics: a bucket's exemplar
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        labels = dict(_LABEL.findall(match.group(2) or ""))
        found.append((match.group(1), labels, float(match.group(3))))
    return found


def total(text: str, name: str, where: Mapping[str, str] | None = None) -> float:
    """Sum of the samples called ``name`` whose labels include ``where``."""
    where = where or {}
    return sum(
        value
        for sample, labels, value in samples(text)
        if sample == name and all(labels.get(k) == v for k, v in where.items())
    )


def series(text: str, name: str) -> list[dict[str, str]]:
    return [labels for sample, labels, _ in samples(text) if sample == name]


def counter_points(name: str) -> list[tuple[dict[str, Any], float]]:
    """(attributes, value) of each point of the counter ``name``, read in process."""
    pipeline = runtime.current().pipeline
    if pipeline is None:
        pytest.fail("otel_django did not build the MeterProvider")
    data = pipeline.reader.scrape()
    points = []
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == name:
                    points += [(dict(p.attributes or {}), p.value) for p in metric.data.data_points]
    return points


def counter_total(name: str) -> float:
    return sum(value for _, value in counter_points(name))
