"""Rendering and writing lines: one writer for structlog loggers and stdlib records alike.

structlog loggers skip the stdlib machinery: the bound logger runs the processors and hands
the rendered line to a :class:`LineLogger`. Stdlib records reach :class:`PipelineHandler` on
the root logger, become an event dict and run through the same processors. Both end in the
same :class:`LineWriter`, so lines from both never interleave.

structlog has the same pieces, and they are measured against these in ``benchmarks/``
(``bench_logging.py``'s lines, instructions counted by callgrind):

- ``BytesLoggerFactory``: 2.6 k instructions a line cheaper (54.2 k against 56.8 k), but its
  logger holds the file it was created with (``sys.stdout.buffer`` at the first line, with
  ``cache_logger_on_first_use``), so redirections and test capture do not apply, a broken
  pipe reaches the caller, text already in ``sys.stdout``'s buffer may come after the line,
  and a fork while a thread writes leaves its lock held. :class:`LineWriter` stays for that.
- ``JSONRenderer(serializer=...)`` around :func:`render_json`'s serializer: +2.5 k a line
  (56.8 k to 59.4 k), for one more call; :func:`render_json` is the renderer.
- ``ProcessorFormatter`` with ``ExtraAdder`` for stdlib records: 163 k instructions a line
  against :class:`PipelineHandler`'s 106 k (+53 %; it copies each record and computes the
  extras from scratch); :class:`PipelineHandler` stays.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import weakref
from typing import Any, TextIO

from structlog import DropEvent
from structlog.typing import EventDict, Processor, WrappedLogger

from ..redaction import Redactor
from ..request_state import request_state
from .servers import SERVER_ACCESS_LOGGERS, access_message, left_out_notice

try:
    import orjson
except ImportError:  # pragma: no cover - exercised by the fallback test
    orjson = None  # type: ignore[assignment]

_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _json_escape(match: re.Match[str]) -> str:
    return json.dumps(match.group())[1:-1]


def _stdout_fd() -> int | None:
    try:
        return sys.__stdout__.fileno() if sys.__stdout__ is not None else None
    except (OSError, ValueError):  # no real file descriptor (an embedding, a test runner)
        return None


_STDOUT_FD = _stdout_fd()


def _write_all(fd: int, data: bytes) -> None:
    written = os.write(fd, data)
    if written < len(data):  # a pipe that took only part of a long line
        view = memoryview(data)[written:]
        while view:
            view = view[os.write(fd, view) :]


class LineWriter:
    """Writes whole lines, each one at once, to ``stream`` (default: the current
    ``sys.stdout``, looked up per line so redirections and test capture apply).

    To the process's real stdout a line goes with one ``write()`` call on the file descriptor,
    after whatever ``print()`` left in ``sys.stdout``'s buffer: a line costs one system call,
    and stays whole in a pipe shared with other processes (up to ``PIPE_BUF``, 4 KiB).
    """

    __slots__ = ("__weakref__", "_lock", "_stream")

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        # A fork while another thread holds the lock must not leave the child's lock held.
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _new_lock(ref))

    def write(self, line: str | bytes) -> None:
        stream = self._stream or sys.stdout
        if stream is None:  # pythonw, or stdout closed by a daemoniser
            return
        fd = _STDOUT_FD if stream is sys.__stdout__ else None
        with self._lock:
            try:
                if fd is not None:
                    stream.flush()
                    if isinstance(line, str):
                        line = line.encode("utf-8", "backslashreplace")
                    _write_all(fd, line)
                    return
                text = line if isinstance(line, str) else line.decode("utf-8")
                try:
                    stream.write(text)
                except UnicodeEncodeError:
                    # A stream that is not UTF-8: JSON escapes keep the line valid JSON.
                    stream.write(_NON_ASCII.sub(_json_escape, text))
                stream.flush()
            except (OSError, ValueError):  # broken pipe, closed stream: never the app's problem
                pass


class LineLogger:
    """What structlog's bound logger wraps: it writes the line the processors rendered."""

    __slots__ = ("_write", "name")

    def __init__(self, name: str | None, writer: LineWriter) -> None:
        self.name = name
        self._write = writer.write

    def msg(self, line: str | bytes) -> None:
        self._write(line)

    debug = info = warning = warn = error = critical = fatal = exception = log = failure = msg


def _new_lock(ref: weakref.ref[LineWriter]) -> None:
    writer = ref()
    if writer is not None:
        writer._lock = threading.Lock()


class LineLoggerFactory:
    """``structlog.get_logger("name")`` → a :class:`LineLogger` called ``name``.

    It also holds the processor list structlog was configured with, so that configuring again
    can swap the processors in place (:func:`otel_django.logging.setup.configure_logging`).
    """

    def __init__(self, writer: LineWriter, processors: list[Processor] | None = None) -> None:
        self.writer = writer
        self.processors: list[Processor] = [] if processors is None else processors

    def __call__(self, *args: Any) -> LineLogger:
        name = args[0] if args and isinstance(args[0], str) else None
        return LineLogger(name, self.writer)


def _fallback_default(value: object) -> object:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


# Valid unescaped in JSON, but line breaks to str.splitlines() and some log shippers.
_LINE_BREAKS = re.compile("[\x85\u2028\u2029]")


def _escape_line_break(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


_stdlib_encoder = json.JSONEncoder(separators=(",", ":"), default=_fallback_default)


def _dumps_stdlib(event_dict: EventDict) -> str:
    return _stdlib_encoder.encode(event_dict) + "\n"


if orjson is not None:
    _OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS

    def _dumps(event_dict: EventDict) -> str | bytes:
        data = orjson.dumps(event_dict, default=_fallback_default, option=_OPTIONS)
        if data.isascii():
            return data
        return _LINE_BREAKS.sub(_escape_line_break, data.decode())
else:  # pragma: no cover
    _dumps = _dumps_stdlib


def render_json(wrapped: WrappedLogger, method_name: str, event_dict: EventDict) -> str | bytes:
    """One JSON object and a newline (UTF-8 bytes or text). Whatever the values, it returns
    a valid line. (structlog's ``JSONRenderer`` around the same serializer costs +2.5 k
    instructions a line: see the module docstring.)"""
    try:
        return _dumps(event_dict)
    except Exception:
        return _render_fallback(event_dict)


def _render_fallback(event_dict: EventDict) -> str:
    try:  # orjson refuses what json accepts: integers beyond 64 bits, say
        return _dumps_stdlib(event_dict)
    except Exception as exc:  # a reference cycle
        safe = {
            k: v if isinstance(v, (str, int, float, bool, type(None))) else repr(v)[:200]
            for k, v in event_dict.items()
        }
        safe["log_render_error"] = type(exc).__name__
        return _dumps_stdlib(safe)


def with_newline(renderer: Processor) -> Processor:
    """Console renderers return the line without its end."""

    def render(wrapped: WrappedLogger, method_name: str, event_dict: EventDict) -> str:
        return str(renderer(wrapped, method_name, event_dict)) + "\n"

    return render


# Attributes every LogRecord has; the others came through ``extra=``.
_PLAIN_SIZE = len(logging.LogRecord("", 0, "", 0, "", (), None).__dict__)
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's message again, with ANSI colours and a template unformatted
}
_REQUEST_LINE = re.compile(r"^(\S+ [^?\s]*)\?(\S*)( HTTP/[0-9.]+)$")


def _add_request_ids(event_dict: dict[str, Any], request: object) -> None:
    """Django logs 4xx responses after the middleware chain has returned, when the request's
    context is gone: the ids come from the state the middleware left on the request."""
    state = request_state(request)
    if state is None:
        return
    event_dict["request_id"] = state.request_id
    context = state.span.get_span_context()
    if context.is_valid:
        event_dict["trace_id"] = format(context.trace_id, "032x")
        event_dict["span_id"] = format(context.span_id, "016x")


class PipelineHandler(logging.Handler):
    """The root handler: stdlib records through the pipeline into the line writer (in place
    of structlog's ``ProcessorFormatter``, which costs +53 % a line: see the module
    docstring)."""

    def __init__(
        self,
        processors: list[Processor],
        writer: LineWriter,
        redactor: Redactor,
        leave_out_server_access: bool = False,
    ) -> None:
        super().__init__()
        self.processors = processors
        self.writer = writer
        self._redactor = redactor
        # otel_django.access logs each request: the servers' access lines are left out.
        self._left_out = SERVER_ACCESS_LOGGERS if leave_out_server_access else frozenset()
        self._notified: set[str] = set()

    def handle(self, record: logging.LogRecord) -> bool:
        # No handler lock: the writer serialises lines, and the processors are re-entrant.
        if record.name in self._left_out:
            if record.name not in self._notified:
                self._notified.add(record.name)
                self.emit(left_out_notice(record.name))
            return False
        if self.filters and not self.filter(record):
            return False
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            event_dict: Any = self.event_dict(record)
            method_name = record.levelname.lower()
            for processor in self.processors:
                event_dict = processor(None, method_name, event_dict)
        except DropEvent:
            return
        except Exception:
            self.handleError(record)
            return
        self.writer.write(event_dict)

    def event_dict(self, record: logging.LogRecord) -> dict[str, Any]:
        try:
            message = record.getMessage()
        except Exception:  # ``log.info("%d", "x")``: keep what was logged
            message = f"{record.msg!s} {record.args!r}"
        if record.name == "django.server":
            message = self._redact_request_line(record, message)
        elif record.name in SERVER_ACCESS_LOGGERS:
            message = access_message(record, self._redactor)
        event_dict: dict[str, Any] = {
            "event": message,
            "logger": record.name,
            "_created": record.created,
        }
        attributes = record.__dict__
        # A record with no ``extra=`` has exactly the plain attributes: skip the set difference.
        extra = () if len(attributes) == _PLAIN_SIZE else attributes.keys() - _RECORD_ATTRIBUTES
        if extra:
            for key in extra:
                value = attributes[key]
                if key == "request" and not isinstance(value, str):
                    # Django passes the HttpRequest (django.request) or the socket
                    # (django.server): their repr holds the raw query string.
                    _add_request_ids(event_dict, value)
                    continue
                event_dict[key] = value
        if record.exc_info:
            event_dict["exc_info"] = record.exc_info
        if record.stack_info:
            event_dict["stack"] = record.stack_info
        return event_dict

    def _redact_request_line(self, record: logging.LogRecord, message: str) -> str:
        """runserver's ``"GET /path?query HTTP/1.1" 200 12``: redact the query's secrets."""
        args = record.args
        if not isinstance(args, tuple) or not args or not isinstance(args[0], str):
            return message
        match = _REQUEST_LINE.match(args[0])
        if match is None:
            return message
        query = self._redactor.query_string(match.group(2))
        if query == match.group(2):
            return message
        redacted = f"{match.group(1)}?{query}{match.group(3)}"
        try:
            return str(record.msg % (redacted, *args[1:]))
        except Exception:
            return message.replace(args[0], redacted)
