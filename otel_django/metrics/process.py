"""Process metrics (semantic conventions ``process.*``, ``cpython.gc.*``), read when collected.

No psutil: ``os.times()``, ``/proc/self/statm`` and ``/proc/self/status`` (Linux; elsewhere
memory is left out and threads are Python's own), ``gc.get_stats()``.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def cpu_time(options: CallbackOptions) -> Iterable[Observation]:
    times = os.times()
    return [
        Observation(times.user, {"cpu.mode": "user"}),
        Observation(times.system, {"cpu.mode": "system"}),
    ]


def memory_usage(options: CallbackOptions) -> Iterable[Observation]:
    try:
        with open("/proc/self/statm", "rb") as statm:
            resident_pages = int(statm.read().split()[1])
    except (OSError, IndexError, ValueError):
        return []
    return [Observation(resident_pages * _PAGE_SIZE)]


def thread_count(options: CallbackOptions) -> Iterable[Observation]:
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"Threads:"):
                    return [Observation(int(line.split()[1]))]
    except (OSError, IndexError, ValueError):
        pass
    return [Observation(threading.active_count())]


def gc_collections(options: CallbackOptions) -> Iterable[Observation]:
    return [
        Observation(stats.get("collections", 0), {"cpython.gc.generation": generation})
        for generation, stats in enumerate(gc.get_stats())
    ]


def instrument_process(meter: Meter) -> None:
    meter.create_observable_counter(
        "process.cpu.time", callbacks=[cpu_time], unit="s",
        description="Total CPU seconds broken down by mode.",
    )  # fmt: skip
    meter.create_observable_up_down_counter(
        "process.memory.usage", callbacks=[memory_usage], unit="By",
        description="The amount of physical memory in use (resident set size).",
    )  # fmt: skip
    meter.create_observable_up_down_counter(
        "process.thread.count", callbacks=[thread_count], unit="{thread}",
        description="Process threads count.",
    )  # fmt: skip
    meter.create_observable_counter(
        "cpython.gc.collections", callbacks=[gc_collections], unit="{collection}",
        description="The number of times a generation was collected since interpreter start.",
    )  # fmt: skip
