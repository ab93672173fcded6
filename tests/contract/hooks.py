"""Hooks named by dotted path in the contract tests' settings."""

from __future__ import annotations

from typing import Any


def request_hook(span: Any, request: Any) -> None:
    span.set_attribute("test.request_hook", request.path)


def response_hook(span: Any, request: Any, response: Any) -> None:
    span.set_attribute("test.response_hook", response.status_code)


def raising_hook(span: Any, *args: Any) -> None:
    raise RuntimeError("hook-failure-7731")
