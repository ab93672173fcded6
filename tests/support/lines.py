"""Log lines as the tests read them: every line one JSON object."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

__all__ = ["Lines", "parse_lines"]

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
