"""The HTTP Basic credentials of ``/metrics``, built one way for every test."""

from __future__ import annotations

import base64

__all__ = ["PASSWORD", "USERNAME", "authorization", "basic"]

USERNAME = "metrics"  # the METRICS_USERNAME default
PASSWORD = "test-metrics-password"  # METRICS_PASSWORD in tests/settings.py


def basic(user: str | bytes = USERNAME, password: str | bytes = PASSWORD) -> str:
    """The ``Authorization`` value ``Basic base64(user:password)``; bytes are sent as they are."""
    raw = (
        (user.encode() if isinstance(user, str) else user)
        + b":"
        + (password.encode() if isinstance(password, str) else password)
    )
    return "Basic " + base64.b64encode(raw).decode()


def authorization(password: str | bytes = PASSWORD, user: str | bytes = USERNAME) -> dict[str, str]:
    """The header as the server helpers take it: ``{"Authorization": "Basic ..."}``."""
    return {"Authorization": basic(user, password)}
