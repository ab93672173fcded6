"""The real services the tests use (PostgreSQL, Redis, Prometheus' binaries) and free ports.

A test that needs a service skips with the reason when the service is down, except under CI
(``CI=true``), where a missing service is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket

import pytest

__all__ = [
    "IN_CI",
    "PG_HOST",
    "PG_PORT",
    "REDIS_DB",
    "REDIS_URL",
    "free_port",
    "port_open",
    "prometheus_tool",
    "require_service",
]

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_HOST = os.environ.get("OTEL_DJANGO_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("OTEL_DJANGO_TEST_PG_PORT", "5432"))
REDIS_DB = int(os.environ.get("OTEL_DJANGO_TEST_REDIS_DB", "0"))
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_service(name: str, host: str, port: int) -> None:
    if port_open(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if IN_CI:
        pytest.fail(f"{message}; CI must provide it")
    pytest.skip(message)


def prometheus_tool(name: str) -> str:
    """Path of Debian's ``prometheus`` or ``promtool``; skips locally, fails under CI if absent."""
    path = shutil.which(name) or f"/usr/bin/{name}"
    if os.access(path, os.X_OK):
        return path
    message = f"{name} is not installed (apt-get install -y prometheus)"
    if IN_CI:
        pytest.fail(f"{message}; CI must provide it")
    pytest.skip(message)
