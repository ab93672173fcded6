"""Configures structlog and stdlib logging as one pipeline: one JSON object per line on stdout.

Processors, in order, for structlog loggers and stdlib records alike:

1. ``merge_contextvars`` (structlog's, faster): the bound context (``request_id`` during a request);
2. ``structured_exception`` (JSON format: structlog's ``dict_tracebacks``) or ``exception_text``
   (console: its ``format_exc_info``): ``exc_info`` → one ``exception`` field, database
   errors' messages withheld (``otel_django.db.errors``);
3. ``core_fields``: ``timestamp level logger event request_id trace_id span_id service.name``;
4. the ``LOG_PROCESSORS`` setting's processors;
5. ``redact_sensitive``: values of keys that look sensitive (done by ``core_fields`` itself
   when there is no ``LOG_PROCESSORS``);
6. the OTLP export, when a log exporter is set (``LOGS_EXPORTER=otlp``): a
   :class:`~otel_django.logging.otlp.LogExport`, started once the provider exists;
7. the renderer: JSON (orjson when installed), or structlog's console renderer.

:func:`configure_logging` returns the :class:`LoggingPipeline` it set up; the caller keeps it
(startup does, to start and stop the OTLP export).

Stdlib: one :class:`~otel_django.logging.output.PipelineHandler` on the root logger. Handlers
that print to stdout or stderr are removed from every existing logger (Django's ``console``
and ``django.server`` handlers, say) and those loggers propagate to the root; other handlers
(files, ``mail_admins``) stay.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

import structlog
from structlog.typing import Processor

from ..config import Config
from ..db.errors import ErrorMessages
from ..redaction import Redactor
from .output import LineLoggerFactory, LineWriter, PipelineHandler, render_json, with_newline

if TYPE_CHECKING:
    from .otlp import LogExport
from .processors import (
    core_fields,
    escape_control_characters,
    exception_text,
    guarded,
    merge_contextvars,
    redact_sensitive,
    structured_exception,
)

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


class LoggingPipeline:
    """What :func:`configure_logging` set up: the processors (one list, shared by structlog's
    loggers and the root handler), the root handler, the writer, and the OTLP step if any."""

    __slots__ = ("handler", "log_export", "processors", "writer")

    def __init__(
        self,
        processors: list[Processor],
        handler: PipelineHandler,
        writer: LineWriter,
        log_export: LogExport | None,
    ) -> None:
        self.processors = processors
        self.handler = handler
        self.writer = writer
        self.log_export = log_export


def build_processors(config: Config, redactor: Redactor | None = None) -> list[Processor]:
    """The processor chain for ``config``, renderer last."""
    redactor = redactor or Redactor(config.logging.redact_keys)
    console = config.logging.format == "console"
    messages = ErrorMessages.from_config(config)
    processors: list[Processor] = [
        merge_contextvars(),
        exception_text(messages) if console else structured_exception(messages),
    ]
    service_name = config.service.resolved_name
    user_processors = _user_processors(config)
    if user_processors:
        processors.append(core_fields(service_name))
        processors.extend(user_processors)
        processors.append(redact_sensitive(redactor))
    else:  # nothing runs in between: redact while copying the fields into place
        processors.append(core_fields(service_name, redactor))
    if config.logs_exported:
        from .otlp import LogExport

        processors.append(LogExport())
    if console:
        processors.append(escape_control_characters)
        processors.append(with_newline(_console_renderer(config.logging.no_color)))
    else:
        processors.append(render_json)
    return processors


def _user_processors(config: Config) -> list[Processor]:
    """``LOG_PROCESSORS``, imported (and validated) by the configuration."""
    return [guarded(processor) for processor in config.logging.processors]


def _console_renderer(no_color: bool) -> Processor:
    colors = sys.stdout is not None and sys.stdout.isatty() and not no_color
    return structlog.dev.ConsoleRenderer(
        colors=colors, exception_formatter=structlog.dev.plain_traceback
    )


def configure_logging(
    config: Config, writer: LineWriter | None = None, *, redactor: Redactor | None = None
) -> LoggingPipeline | None:
    """Sets up the pipeline, unless ``LOGGING_ENABLED`` is off (then None).

    Calling it again swaps the processors in place, so loggers already cached by structlog
    (``cache_logger_on_first_use``) follow; their level and writer stay those of the first call.
    The list they hold is found on the logger factory structlog is configured with. Not
    thread-safe: startup calls it under its own lock.
    """
    if not config.logging.enabled:
        return None
    redactor = redactor or Redactor(config.logging.redact_keys)
    processors = build_processors(config, redactor)
    level = _LEVELS[config.logging.level]
    previous = structlog.get_config()["logger_factory"]
    if isinstance(previous, LineLoggerFactory):
        previous.processors[:] = processors
        processors = previous.processors
        # The cached loggers' writer: one writer (one lock) for every line.
        writer = writer or previous.writer
    writer = writer or LineWriter()
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=LineLoggerFactory(writer, processors),
        context_class=dict,
        cache_logger_on_first_use=True,
    )
    handler = PipelineHandler(
        processors, writer, redactor, leave_out_server_access=config.logging.access_log
    )
    # Every PipelineHandler goes too (a previous call's): it prints to stdout.
    _remove_console_handlers(config.logs_exported)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    log_export = None
    if config.logs_exported:
        from .otlp import LogExport

        log_export = next((p for p in processors if isinstance(p, LogExport)), None)
    return LoggingPipeline(processors, handler, writer, log_export)


def _prints_to_console(handler: logging.Handler) -> bool:
    if isinstance(handler, PipelineHandler):
        return True
    if not isinstance(handler, logging.StreamHandler) or isinstance(handler, logging.FileHandler):
        return False
    stream = getattr(handler, "stream", None)
    return stream is not None and stream in {sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__}


def _remove_console_handlers(exporting: bool) -> None:
    """Handlers that print lines of their own would break one-JSON-object-per-line."""
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers.extend(
        lg
        for lg in list(logging.Logger.manager.loggerDict.values())
        if isinstance(lg, logging.Logger)
    )
    for lg in loggers:
        removed = False
        for handler in list(lg.handlers):
            if _prints_to_console(handler) or (exporting and _is_otel_logging_handler(handler)):
                lg.removeHandler(handler)
                removed = True
        if removed:  # it printed its own lines: now the root's handler prints them
            lg.propagate = True


def _is_otel_logging_handler(handler: logging.Handler) -> bool:
    """The SDK's handler would export each record a second time."""
    return type(handler).__name__ == "LoggingHandler" and type(handler).__module__.startswith(
        "opentelemetry.sdk._logs"
    )
