"""Exporters chosen the SDK's way, and guarded against a Collector that is away.

**Choice.** ``OTEL_{TRACES,METRICS,LOGS}_EXPORTER`` (or the settings dict) name exporters as
the SDK configurator reads them: ``otlp`` is ``otlp_proto_grpc`` or ``otlp_proto_http``
according to ``OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL``, else ``OTEL_EXPORTER_OTLP_PROTOCOL``
(default ``http/protobuf``); any other name is looked up in the standard entry-point groups
(``opentelemetry_traces_exporter`` ...). The OTLP names resolve to the classes their packages
register under them without scanning every installed distribution's entry points (that scan
costs boot time); a signal may also give otel_django's own meaning to a name (``console`` for
traces is the tree printer). Every exporter is built with no arguments, so it reads its
endpoint, headers, timeout, compression and certificates from the environment itself. A name
that cannot be served is one warning naming the variable, never a crash.

**Guard.** The SDK exporters retry with backoff up to their timeout and log every failed
batch: with no Collector listening that is a warning per batch and a batch thread stuck in
retries. The guard logs one warning when export starts failing and one line when it
recovers; while the endpoint is down it tries at most once every few seconds and drops the
rest. The processor's queue stays bounded and requests never wait on export.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from . import _compat
from ._compat import OTLP_LOG_EXPORTERS

logger = logging.getLogger("otel_django.export")

Signal = Literal["traces", "metrics", "logs"]

RETRY_AFTER_S = 5.0
GRPC_EXTRA = "otel_django[grpc]"

ENTRY_POINT_GROUPS: Mapping[Signal, str] = {
    "traces": "opentelemetry_traces_exporter",
    "metrics": "opentelemetry_metrics_exporter",
    "logs": "opentelemetry_logs_exporter",
}
EXPORTER_VARIABLES: Mapping[Signal, str] = {
    "traces": "OTEL_TRACES_EXPORTER",
    "metrics": "OTEL_METRICS_EXPORTER",
    "logs": "OTEL_LOGS_EXPORTER",
}
PROTOCOL_VARIABLES: Mapping[Signal, str] = {
    "traces": "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "metrics": "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    "logs": "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
}
_NAME_BY_PROTOCOL = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}

# The classes the OTLP exporter packages register under these entry-point names.
OTLP_CLASSES: Mapping[tuple[Signal, str], str] = {
    ("traces", "otlp_proto_http"): "opentelemetry.exporter.otlp.proto.http.trace_exporter:"
    "OTLPSpanExporter",
    ("traces", "otlp_proto_grpc"): "opentelemetry.exporter.otlp.proto.grpc.trace_exporter:"
    "OTLPSpanExporter",
    ("metrics", "otlp_proto_http"): "opentelemetry.exporter.otlp.proto.http.metric_exporter:"
    "OTLPMetricExporter",
    ("metrics", "otlp_proto_grpc"): "opentelemetry.exporter.otlp.proto.grpc.metric_exporter:"
    "OTLPMetricExporter",
    ("logs", "otlp_proto_http"): OTLP_LOG_EXPORTERS["otlp_proto_http"],
    ("logs", "otlp_proto_grpc"): OTLP_LOG_EXPORTERS["otlp_proto_grpc"],
}


class Notes:
    """Startup warnings, each logged once per process setup (three signals may share one)."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def warn(self, message: str) -> None:
        if message not in self._seen:
            self._seen.add(message)
            logger.warning("%s", message)


@dataclass(frozen=True)
class Choice:
    """One exporter to build: the name as configured, and the class (or factory) to call."""

    name: str
    factory: Callable[[], Any]


def otlp_protocol(signal: Signal, environ: Mapping[str, str], notes: Notes) -> str:
    """The OTLP protocol of ``signal``; ``environ``: the configuration's exporter variables."""
    variable = PROTOCOL_VARIABLES[signal]
    value = environ.get(variable, "").strip()
    if not value:
        variable = "OTEL_EXPORTER_OTLP_PROTOCOL"
        value = environ.get(variable, "").strip()
    if not value:
        return "http/protobuf"
    if value not in _NAME_BY_PROTOCOL:
        notes.warn(
            f"{variable}={value!r} is not supported by the Python exporters "
            "(grpc, http/protobuf): exporting over http/protobuf"
        )
        return "http/protobuf"
    return value


def load_reference(reference: str) -> Any:
    """``package.module:attribute`` -> the attribute (an entry point's value)."""
    module_name, _, attribute = reference.partition(":")
    value: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        value = getattr(value, part)
    return value


def _entry_point(signal: Signal, name: str) -> Any | None:
    from importlib.metadata import entry_points

    for entry_point in entry_points(group=ENTRY_POINT_GROUPS[signal], name=name):
        return entry_point.load()
    return None


def choose(
    signal: Signal,
    names: Sequence[str],
    environ: Mapping[str, str],
    notes: Notes,
    own: Mapping[str, Callable[[], Any]] | None = None,
    otlp_classes: Mapping[tuple[Signal, str], str] = OTLP_CLASSES,
) -> list[Choice]:
    """The exporters ``names`` ask for, in order; names that cannot be served are warned about.

    ``own`` gives a signal's otel_django-specific meaning to some names (checked first);
    ``otlp_classes`` the class references of the OTLP names.
    """
    variable = EXPORTER_VARIABLES[signal]
    choices: list[Choice] = []
    for name in names:
        if own and name in own:
            choices.append(Choice(name, own[name]))
            continue
        resolved = name
        if name == "otlp":
            resolved = _NAME_BY_PROTOCOL[otlp_protocol(signal, environ, notes)]
        factory: Any = None
        reference = otlp_classes.get((signal, resolved))
        if reference is not None:
            try:
                factory = load_reference(reference)
            except ImportError as exc:
                if resolved != "otlp_proto_grpc":
                    notes.warn(
                        f"{variable}: exporter {name!r} could not be loaded ({exc}): skipped"
                    )
                    continue
                notes.warn(
                    f"OTLP over gRPC needs the grpc extra (pip install '{GRPC_EXTRA}'): "
                    "exporting over http/protobuf instead"
                )
                factory = load_reference(otlp_classes[(signal, "otlp_proto_http")])
        else:
            try:
                factory = _entry_point(signal, resolved)
            except Exception as exc:
                notes.warn(f"{variable}: exporter {name!r} could not be loaded ({exc}): skipped")
                continue
        if factory is None:
            notes.warn(
                f"{variable}: no exporter {name!r} is installed "
                f"(entry point group {ENTRY_POINT_GROUPS[signal]}): skipped"
            )
            continue
        choices.append(Choice(name, factory))
    return choices


def build(choice: Choice, signal: Signal, notes: Notes) -> Any | None:
    """Calls the factory with no arguments; a failure is one warning, never a crash."""
    try:
        return choice.factory()
    except Exception as exc:
        notes.warn(
            f"{EXPORTER_VARIABLES[signal]}: exporter {choice.name!r} could not be built "
            f"({type(exc).__name__}: {exc}): skipped"
        )
        return None


def batch_processor(
    processor_class: Callable[..., Any],
    exporter: Any,
    prefix: str,
    notes: Notes,
    variables: Mapping[str, str],
) -> Any | None:
    """``processor_class(exporter)``, reading ``<prefix>_*`` itself (``OTEL_BSP``, ``OTEL_BLRP``);
    ``variables``: the configuration's exporter variables (``Config.exporter_variables``).

    The SDK refuses a batch size above the queue size, which a queue size set alone gives
    (``OTEL_BSP_MAX_QUEUE_SIZE=64`` with the default batch of 512): then batches are the
    queue's size, with a warning. Any other refusal is a warning and no export, never a crash.
    """
    try:
        return processor_class(exporter)
    except ValueError as exc:
        reason = str(exc)
    try:
        queue = int(variables.get(f"{prefix}_MAX_QUEUE_SIZE", ""))
        processor = processor_class(exporter, max_export_batch_size=queue)
    except ValueError:
        notes.warn(f"{prefix}_*: {reason} Nothing is exported this way.")
        return None
    notes.warn(f"{prefix}_*: {reason} Batches of {queue} are sent instead.")
    return processor


def describe_target(exporter: object) -> str:
    """Where an exporter sends, for log lines: its endpoint when it has one (private to the
    OTLP exporters, ``_compat``; only this message depends on it), else its class."""
    return _compat.exporter_endpoint(exporter) or type(exporter).__name__


def _exporter_loggers(exporter: object) -> list[logging.Logger]:
    """The loggers of the modules that define the exporter's class and its bases."""
    modules = dict.fromkeys(
        cls.__module__
        for cls in type(exporter).__mro__
        if cls.__module__.startswith("opentelemetry.exporter")
    )
    return [logging.getLogger(module) for module in modules]


class ExportGuard:
    def __init__(self, signal: str, items: str, exporter: object, unaffected: str):
        self._signal = signal  # "span", "log", "metric"
        self._items = items  # "spans", "log records", "metrics"
        self.endpoint = describe_target(exporter)
        self._sdk_loggers = _exporter_loggers(exporter)
        self._unaffected = unaffected
        self._lock = threading.Lock()
        self._failing = False
        self._next_attempt = 0.0

    def export(self, batch: Any, send: Callable[[Any], bool]) -> bool:
        """Sends ``batch`` unless the endpoint is known to be down; whether it arrived."""
        if self._failing and time.monotonic() < self._next_attempt:
            return False
        levels = [(lg, lg.level) for lg in self._sdk_loggers]
        for lg, _ in levels:
            lg.setLevel(logging.CRITICAL)  # one warning of ours, not one per batch
        try:
            ok = send(batch)
        except Exception:
            ok = False
        finally:
            for lg, level in levels:
                lg.setLevel(level)
        with self._lock:
            if ok and self._failing:
                logger.warning("%s export to %s works again", self._signal, self.endpoint)
            elif not ok:
                if not self._failing:
                    logger.warning(
                        "%s export to %s failed; %s are dropped until it answers "
                        "(retrying every %.0f s). %s",
                        self._signal, self.endpoint, self._items, RETRY_AFTER_S, self._unaffected,
                    )  # fmt: skip
                self._next_attempt = time.monotonic() + RETRY_AFTER_S
            self._failing = not ok
        return ok
