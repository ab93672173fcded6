"""Configures structlog and stdlib logging as one pipeline: one JSON object per line on stdout.

Processors, in order, for structlog loggers and stdlib records alike:

1. ``merge_contextvars`` (structlog's, faster): the bound context (``request_id`` during a request);
2. ``structured_exception`` (JSON format) or ``exception_text`` (console): ``exc_info`` → one
   ``exception`` field, database errors' messages withheld (``otel_django.db.errors``);
3. ``core_fields``: ``timestamp level logger event request_id trace_id span_id service.name``;
4. the ``LOG_PROCESSORS`` setting's processors;
5. ``redact_sensitive``: values of keys that look sensitive (done by ``core_fields`` itself
   when there is no ``LOG_PROCESSORS``);
6. the OTLP export, when a log exporter is set (``LOGS_EXPORTER=otlp``);
7. the renderer: JSON (orjson when installed), or structlog's console renderer.

Stdlib: one :class:`~otel_django.logging.output.PipelineHandler` on the root logger. Handlers
that print to stdout or stderr are removed from every existing logger (Django's ``console``
and ``django.server`` handlers, say) and those loggers propagate to the root; other handlers
(files, ``mail_admins``) stay.
"""

from __future__ import annotations

import logging
import sys
import threading

import structlog
from structlog.typing import Processor

from ..config import Config
from ..db.errors import ErrorMessages
from ..redaction import Redactor
from .output import LineLoggerFactory, LineWriter, PipelineHandler, render_json, with_newline
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
_lock = threading.Lock()
_handler: PipelineHandler | None = None
_processors: list[Processor] | None = None


def build_processors(config: Config, redactor: Redactor | None = None) -> list[Processor]:
    """The processor chain for ``config``, renderer last."""
    redactor = redactor or Redactor(config.logging.redact_keys)
    console = config.logging.format == "console"
    messages = ErrorMessages.from_config(config)
    processors: list[Processor] = [
        merge_contextvars,
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
        from .otlp import export_processor

        processors.append(export_processor)
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
) -> None:
    """Sets up the pipeline, unless ``LOGGING_ENABLED`` is off.

    Calling it again swaps the processors in place, so loggers already cached by structlog
    (``cache_logger_on_first_use``) follow; their level and writer stay those of the first call.
    """
    global _handler, _processors
    if not config.logging.enabled:
        return
    redactor = redactor or Redactor(config.logging.redact_keys)
    processors = build_processors(config, redactor)
    writer = writer or LineWriter()
    level = _LEVELS[config.logging.level]
    with _lock:
        if _processors is None:
            _processors = processors
        else:
            _processors[:] = processors
        structlog.configure(
            processors=_processors,
            wrapper_class=structlog.make_filtering_bound_logger(level),
            logger_factory=LineLoggerFactory(writer),
            context_class=dict,
            cache_logger_on_first_use=True,
        )
        handler = PipelineHandler(
            _processors, writer, redactor, leave_out_server_access=config.logging.access_log
        )
        root = logging.getLogger()
        if _handler is not None:
            root.removeHandler(_handler)
        _remove_console_handlers(config.logs_exported)
        root.addHandler(handler)
        root.setLevel(level)
        _handler = handler


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
