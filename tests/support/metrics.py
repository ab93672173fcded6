"""Shared by the metrics tests: credentials, scraping through the test client, sample lookup."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping

from django.test import Client

USERNAME = "metrics"
PASSWORD = "test-metrics-password"  # tests/settings.py

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_EXEMPLAR = re.compile(r" # \{[^}]*\} \S+( \S+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def basic(user: str | bytes = USERNAME, password: str | bytes = PASSWORD) -> str:
    raw = (
        (user.encode() if isinstance(user, str) else user)
        + b":"
        + (password.encode() if isinstance(password, str) else password)
    )
    return "Basic " + base64.b64encode(raw).decode()


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
