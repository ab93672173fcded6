"""Fixtures of the log tests: captured stdout as parsed lines, a configuration to vary."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from otel_django import runtime
from otel_django.config import Config
from otel_django.logging.setup import configure_logging

Lines = Callable[[], list[dict[str, Any]]]


def parse_lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` is one JSON object; fails the test otherwise."""
    parsed = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            value = json.loads(line)
        except ValueError:
            pytest.fail(f"line {number} is not JSON: {line!r}")
        assert isinstance(value, dict), f"line {number} is not an object: {line!r}"
        parsed.append(value)
    return parsed


@pytest.fixture
def lines(capsys: pytest.CaptureFixture[str]) -> Lines:
    """Reads what was written to stdout since the last call, as parsed JSON lines."""
    capsys.readouterr()

    def read() -> list[dict[str, Any]]:
        return parse_lines(capsys.readouterr().out)

    return read


@pytest.fixture
def raw_output(capsys: pytest.CaptureFixture[str]) -> Callable[[], str]:
    capsys.readouterr()
    return lambda: capsys.readouterr().out


@pytest.fixture
def with_config() -> Iterator[Callable[..., Config]]:
    """``with_config(SLOW_REQUEST_MS=0)``: the active configuration with some settings changed,
    logging reconfigured with it; everything is restored afterwards."""
    previous = runtime.get_config()

    def apply(**changes: Any) -> Config:
        config = dataclasses.replace(previous, **{k.lower(): v for k, v in changes.items()})
        runtime.set_config(config)
        configure_logging(config)
        return config

    yield apply
    runtime.set_config(previous)
    configure_logging(previous)
