"""Optional OTLP log export, correlated with traces.

With a log exporter (``LOGS_EXPORTER=otlp``) the pipeline gets one more processor, a
:class:`LogExport`, after redaction and before rendering: each line is also sent as an OTel
log record (body: the event; attributes: the other keys; trace and span ids from the current
span). stdout keeps its line, printed once; no stdlib handler of the SDK is added, so nothing
is exported twice.

The provider (:func:`setup_log_export`) is created with the other providers (in each worker
under gunicorn), after the pipeline exists, and handed to the pipeline's :class:`LogExport`
(:meth:`LogExport.start`): until then the processor passes lines through untouched.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry._logs import Logger as APILogger
from opentelemetry._logs import LogRecord, SeverityNumber, set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs import export as _log_export
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from structlog.typing import EventDict, WrappedLogger

from ..config import Config
from ..export import ExportGuard, Notes, batch_processor, build, choose
from ..semconv import REQUEST_ID_ATTRIBUTE

# The newer name; the older one is deprecated.
ExportResult: Any = (
    getattr(_log_export, "LogRecordExportResult", None) or _log_export.LogExportResult
)

logger = logging.getLogger("otel_django.export")

_SEVERITY = {
    "debug": SeverityNumber.DEBUG,
    "info": SeverityNumber.INFO,
    "warning": SeverityNumber.WARN,
    "error": SeverityNumber.ERROR,
    "critical": SeverityNumber.FATAL,
}
# Carried by the record itself (body, severity, ids) or by the resource (service.name).
_NOT_ATTRIBUTES = frozenset(
    {
        "timestamp",
        "level",
        "logger",
        "event",
        "trace_id",
        "span_id",
        "service.name",
        "exception",
        "exc_info",
    }
)
# The exporters' own complaints must not be exported: a failing export would feed itself.
_NOT_EXPORTED_LOGGERS = ("opentelemetry", "otel_django.export")


class GuardedLogExporter:
    """Any log record exporter, behind the guard (``otel_django.export``)."""

    def __init__(self, exporter: Any) -> None:
        self.exporter = exporter
        self._guard = ExportGuard("log", "log records", exporter, "stdout lines are not affected.")

    @property
    def endpoint(self) -> str:
        return self._guard.endpoint

    def export(self, batch: Sequence[Any]) -> Any:
        sent = self._guard.export(
            batch, lambda records: getattr(self.exporter.export(records), "name", "") == "SUCCESS"
        )
        return ExportResult.SUCCESS if sent else ExportResult.FAILURE

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.exporter.force_flush(timeout_millis))


def _stdout_lines() -> None:
    """``console``: the JSON lines otel_django prints on stdout are the console output."""
    return None


def setup_log_export(
    config: Config, resource: Resource, notes: Notes | None = None
) -> LoggerProvider | None:
    """Creates the LoggerProvider that sends log records to the configured exporters, and sets
    it as the OTel API's.

    Each exporter is built with no arguments behind ``BatchLogRecordProcessor(exporter)``, so
    ``OTEL_EXPORTER_OTLP_[LOGS_]*`` and ``OTEL_BLRP_*`` apply. None when nothing exports.
    """
    notes = notes or Notes()
    processors = []
    for choice in choose(
        "logs",
        config.logging.exporter,
        config.exporter_variables,
        notes,
        {"console": _stdout_lines},
    ):
        exporter = build(choice, "logs", notes)
        if exporter is None:
            continue
        processor = batch_processor(
            BatchLogRecordProcessor,
            GuardedLogExporter(exporter),
            "OTEL_BLRP",
            notes,
            config.exporter_variables,
        )
        if processor is not None:
            processors.append(processor)
    if not processors:
        return None
    provider = LoggerProvider(resource=resource)
    for processor in processors:
        provider.add_log_record_processor(processor)
    set_logger_provider(provider)
    return provider


class LogExport:
    """The pipeline's processor that sends each line as an OTel log record to the provider it
    was started with; it never raises."""

    def __init__(self) -> None:
        self.provider: LoggerProvider | None = None
        self._loggers: dict[str, APILogger] = {}

    def start(self, provider: LoggerProvider) -> None:
        self._loggers = {}
        self.provider = provider

    def stop(self) -> None:
        """No more records (lines keep going to stdout); the provider's owner shuts it down."""
        self.provider = None
        self._loggers = {}

    def __call__(
        self, wrapped: WrappedLogger, method_name: str, event_dict: EventDict
    ) -> EventDict:
        provider = self.provider
        if provider is None:
            return event_dict
        name = event_dict.get("logger") or "otel_django"
        if not isinstance(name, str) or name.startswith(_NOT_EXPORTED_LOGGERS):
            return event_dict
        with contextlib.suppress(Exception):  # telemetry never breaks the line, let alone the app
            self._emit(provider, name, event_dict)
        return event_dict

    def _emit(self, provider: LoggerProvider, name: str, event_dict: EventDict) -> None:
        loggers = self._loggers
        otel_logger = loggers.get(name)
        if otel_logger is None:
            otel_logger = provider.get_logger(name)
            if len(loggers) < 1000:
                loggers[name] = otel_logger
        _emit_record(otel_logger, event_dict)


def _emit_record(otel_logger: APILogger, event_dict: EventDict) -> None:
    level = event_dict.get("level", "info")
    attributes: dict[str, Any] = {}
    for key, value in event_dict.items():
        if key in _NOT_ATTRIBUTES:
            continue
        attributes[REQUEST_ID_ATTRIBUTE if key == "request_id" else key] = _attribute_value(value)
    exception = event_dict.get("exception")
    if exception is not None:
        attributes.update(exception_attributes(exception))
    elif event_dict.get("exc_info"):
        attributes.update(_exc_info_attributes(event_dict["exc_info"]))
    event = event_dict.get("event")
    otel_logger.emit(
        LogRecord(
            timestamp=time.time_ns(),
            severity_text=str(level).upper(),
            severity_number=_SEVERITY.get(level, SeverityNumber.UNSPECIFIED),
            body=event if isinstance(event, str) else str(event),
            attributes=attributes,
        )
    )


def _attribute_value(value: object) -> Any:
    if isinstance(value, (str, bool, float)):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else str(value)
    if (
        isinstance(value, (list, tuple))
        and value
        and all(type(v) is type(value[0]) for v in value)
        and isinstance(value[0], (str, bool, int, float))
    ):
        return tuple(value)
    if value is None:
        return "None"
    if isinstance(value, dict):
        from .output import render_json

        line = render_json(None, "", value)
        return (line.decode() if isinstance(line, bytes) else line).rstrip("\n")
    return str(value)


def exception_attributes(exception: object) -> dict[str, str]:
    """``exception.type``/``message``/``stacktrace`` from the ``exception`` field."""
    if isinstance(exception, str):
        return {"exception.stacktrace": exception}
    if not isinstance(exception, list) or not exception or not isinstance(exception[0], dict):
        return {}
    lines: list[str] = []
    for stack in reversed(exception):
        lines.append("Traceback (most recent call last):")
        for frame in stack.get("frames", ()):
            lines.append(
                f'  File "{frame.get("filename")}", line {frame.get("lineno")}, '
                f"in {frame.get('name')}"
            )
        lines.append(f"{stack.get('exc_type')}: {stack.get('exc_value')}")
    first = exception[0]
    return {
        "exception.type": str(first.get("exc_type")),
        "exception.message": str(first.get("exc_value")),
        "exception.stacktrace": "\n".join(lines),
    }


def _exc_info_attributes(value: object) -> dict[str, str]:
    import traceback

    from .processors import exc_info_tuple

    info = exc_info_tuple(value)
    if info is None:
        return {}
    return {
        "exception.type": info[0].__qualname__,
        "exception.message": str(info[1]),
        "exception.stacktrace": "".join(traceback.format_exception(*info)),
    }
