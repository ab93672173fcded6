"""A per-metric limit on attribute sets, as the OTel metrics SDK spec describes it.

The Python SDK has no cardinality limit, so a metric fed attacker-influenced attributes would
grow without bound. This wraps the SDK's per-stream ``consume_measurement``: while a stream
holds fewer than ``limit - 1`` attribute sets nothing changes (one ``len()`` per
measurement); beyond that, measurements with a new attribute set are recorded under
``{"otel.metric.overflow": True}`` instead, so totals stay right and at most ``limit``
series exist per metric.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("otel_django.metrics")

OVERFLOW_ATTRIBUTES = {"otel.metric.overflow": True}

_lock = threading.Lock()
_limit = 2000
_original: Callable[..., None] | None = None


def install(limit: int) -> bool:
    """Applies ``limit`` to every SDK metric stream of the process; False when unsupported."""
    global _limit, _original
    try:
        from opentelemetry.sdk.metrics._internal import _view_instrument_match as vim
    except ImportError:
        logger.warning(
            "this opentelemetry-sdk has no known metric stream class: no cardinality limit"
        )
        return False
    cls = vim._ViewInstrumentMatch
    hash_attributes: Callable[[Any], Any] | None = getattr(vim, "_hash_attributes", None)
    with _lock:
        _limit = limit
        if _original is not None:
            return True
        if hash_attributes is None:
            logger.warning(
                "this opentelemetry-sdk is not the one otel_django knows: no cardinality limit"
            )
            return False
        key_of = hash_attributes
        known = (
            callable(getattr(cls, "consume_measurement", None))
            and "_attributes_aggregation" in cls.__init__.__code__.co_names
        )
        if not known:
            logger.warning(
                "this opentelemetry-sdk is not the one otel_django knows: no cardinality limit"
            )
            return False
        original: Callable[..., None] = cls.consume_measurement
        overflow_key = key_of(OVERFLOW_ATTRIBUTES)

        def consume_measurement(
            self: Any, measurement: Any, should_sample_exemplar: bool = True
        ) -> None:
            aggregations = self._attributes_aggregation
            if len(aggregations) < _limit - 1:
                return original(self, measurement, should_sample_exemplar)
            attributes = dict(measurement.attributes or {})
            keys = self._view._attribute_keys
            if keys is not None:
                attributes = {k: v for k, v in attributes.items() if k in keys}
            key = key_of(attributes)
            if key not in aggregations and key != overflow_key:
                measurement = _with_attributes(measurement, OVERFLOW_ATTRIBUTES)
            return original(self, measurement, should_sample_exemplar)

        cls.consume_measurement = consume_measurement  # type: ignore[method-assign]
        _original = original
    return True


def uninstall() -> None:
    """Restores the SDK's own method (tests)."""
    global _original
    from opentelemetry.sdk.metrics._internal import _view_instrument_match as vim

    with _lock:
        if _original is not None:
            vim._ViewInstrumentMatch.consume_measurement = _original  # type: ignore[method-assign]
            _original = None


def _with_attributes(measurement: Any, attributes: dict[str, bool]) -> Any:
    import dataclasses

    return dataclasses.replace(measurement, attributes=attributes)
