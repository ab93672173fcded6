"""Health probes of otel_django and the readiness checks behind them.

Add a check of your own, typically in ``AppConfig.ready()``::

    from otel_django.health import register_check

    def payment_gateway() -> None:
        if not gateway.ping():
            raise RuntimeError("payment gateway does not answer")

    register_check("payment-gateway", payment_gateway)

The check runs on every readiness probe, within ``HEALTH_CHECK_TIMEOUT_S``; raising (or not
returning in time) makes ``/readyz`` answer 503.
"""

from __future__ import annotations

from .checks import register_check, unregister_check

__all__ = ["register_check", "unregister_check"]
