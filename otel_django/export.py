"""OTLP export that degrades quietly when the Collector is away (spans and log records alike).

The SDK exporters retry with backoff up to their timeout and log every failed batch: with no
Collector listening that is a warning per batch and a batch thread stuck in retries. The guard
logs one warning when export starts failing and one line when it recovers; while the endpoint
is down it tries at most once every few seconds and drops the rest. The processor's queue stays
bounded and requests never wait on export.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

logger = logging.getLogger("otel_django.export")

RETRY_AFTER_S = 5.0


class ExportGuard:
    def __init__(self, signal: str, items: str, endpoint: str, sdk_logger: str, unaffected: str):
        self._signal = signal  # "span", "log"
        self._items = items  # "spans", "log records"
        self.endpoint = endpoint
        self._sdk_logger = logging.getLogger(sdk_logger)
        self._unaffected = unaffected
        self._lock = threading.Lock()
        self._failing = False
        self._next_attempt = 0.0
        self.dropped = 0

    def export(self, batch: Sequence[Any], send: Callable[[Sequence[Any]], bool]) -> bool:
        """Sends ``batch`` unless the endpoint is known to be down; whether it arrived."""
        if self._failing and time.monotonic() < self._next_attempt:
            self.dropped += len(batch)
            return False
        previous_level = self._sdk_logger.level
        self._sdk_logger.setLevel(logging.CRITICAL)  # one warning of ours, not one per batch
        try:
            ok = send(batch)
        except Exception:
            ok = False
        finally:
            self._sdk_logger.setLevel(previous_level)
        with self._lock:
            if ok and self._failing:
                logger.warning("%s export to %s works again", self._signal, self.endpoint)
            elif not ok:
                self.dropped += len(batch)
                if not self._failing:
                    logger.warning(
                        "%s export to %s failed; %s are dropped until it answers "
                        "(retrying every %.0f s). %s",
                        self._signal, self.endpoint, self._items, RETRY_AFTER_S, self._unaffected,
                    )  # fmt: skip
                self._next_attempt = time.monotonic() + RETRY_AFTER_S
            self._failing = not ok
        return ok
