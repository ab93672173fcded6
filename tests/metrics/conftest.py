"""Fixtures of the metrics tests: a way to run the view under another configuration."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from otel_django import runtime
from otel_django.config import Config


@pytest.fixture
def configure() -> Iterator[Callable[..., Config]]:
    """``configure(metrics_password=None, ...)``: the active Config with these fields changed."""
    live = runtime.current()
    original = live.config

    def apply(**changes: Any) -> Config:
        config = original.replace(**changes)
        runtime.reset(dataclasses.replace(live, config=config))
        return config

    yield apply
    runtime.reset(live)
