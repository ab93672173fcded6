"""The processors of the log pipeline, shared by structlog loggers and stdlib records.

Each is a plain structlog processor ``(logger, method_name, event_dict) -> event_dict``, or
a factory that builds one; what a processor remembers between lines (the last second's text,
the last span's ids) lives in the processor, not in this module.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from types import TracebackType
from typing import Any

from opentelemetry import trace
from opentelemetry.context import get_current
from structlog import DropEvent
from structlog.contextvars import STRUCTLOG_KEY_PREFIX
from structlog.contextvars import merge_contextvars as structlog_merge_contextvars
from structlog.processors import ExceptionRenderer
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, Processor, WrappedLogger

from .. import _compat
from ..db.errors import ErrorMessages, Withheld, scrub
from ..redaction import REDACTED, Redactor

# structlog method names and stdlib level names, lowercased, to the one level vocabulary.
_LEVELS = {
    "debug": "debug",
    "info": "info",
    "msg": "info",
    "warning": "warning",
    "warn": "warning",
    "error": "error",
    "exception": "error",
    "critical": "critical",
    "fatal": "critical",
}
# Keys the pipeline itself sets: never redacted, never escaped.
CORE_KEYS = frozenset(
    {
        "timestamp",
        "level",
        "logger",
        "event",
        "request_id",
        "trace_id",
        "span_id",
        "service.name",
        "exception",
    }
)

_DATE_TIME = "%Y-%m-%dT%H:%M:%S"


def rfc3339_ns(ns: int) -> str:
    """``2025-01-31T12:00:00.123456Z``: RFC 3339, UTC, microseconds, from epoch nanoseconds."""
    second = ns // 1_000_000_000
    text = time.strftime(_DATE_TIME, time.gmtime(second))
    return "%s.%06dZ" % (text, ns // 1000 % 1_000_000)  # noqa: UP031 - faster here


def rfc3339(epoch: float) -> str:
    """The same, from epoch seconds (a stdlib record's ``created``)."""
    return rfc3339_ns(round(epoch * 1e6) * 1000)


class Timestamps:
    """:func:`rfc3339_ns` and :func:`rfc3339` with the date and time part formatted once per
    second: strftime costs more than the rest of a line's timestamp."""

    __slots__ = ("_second",)

    def __init__(self) -> None:
        # One tuple, replaced whole: threads never see one second's number with another's text.
        self._second: tuple[int, str] = (-1, "")

    def from_ns(self, ns: int) -> str:
        second = ns // 1_000_000_000
        cached = self._second
        if cached[0] != second:
            cached = (second, time.strftime(_DATE_TIME, time.gmtime(second)))
            self._second = cached
        return "%s.%06dZ" % (cached[1], ns // 1000 % 1_000_000)  # noqa: UP031 - faster here

    def from_epoch(self, epoch: float) -> str:
        return self.from_ns(round(epoch * 1e6) * 1000)


# trace.get_current_span() checks the span against an ABC on every call; reading the context
# directly and checking only spans not seen before is cheaper: trace.get_current_span() here
# costs +3.4 k instructions a line (56.8 k → 60.2 k, bench_logging's structlog line, callgrind).
_SPAN_KEY: str | None = _compat.current_span_key()


class TraceIds:
    """Hex trace and span id of the current span, remembering the last span seen: lines of
    one request come from the same few spans."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: tuple[object, tuple[str, str] | None] = (None, None)

    def current(self) -> tuple[str, str] | None:
        """None outside any (valid) span."""
        span = get_current().get(_SPAN_KEY) if _SPAN_KEY is not None else trace.get_current_span()
        last = self._last
        if last[0] is span:
            return last[1]
        ids = None
        if isinstance(span, trace.Span):
            context = span.get_span_context()
            if context.is_valid:
                ids = (format(context.trace_id, "032x"), format(context.span_id, "016x"))
        self._last = (span, ids)
        return ids


def merge_contextvars() -> Processor:
    """structlog's ``merge_contextvars``, reading structlog's own context variables only
    instead of copying the context and walking every variable in it: structlog's processor
    costs +2.9 k instructions a line (56.8 k → 59.7 k, bench_logging's structlog line,
    callgrind), more in a Django request, whose context holds more variables."""
    variables = _compat.structlog_context_variables()
    if variables is None:  # pragma: no cover - a structlog that stores them elsewhere
        return structlog_merge_contextvars
    prefix_length = len(STRUCTLOG_KEY_PREFIX)
    # (how many variables structlog had, their keys and variables), replaced whole.
    bound: tuple[int, list[tuple[str, Any]]] = (-1, [])

    def merge(wrapped: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        nonlocal bound
        size, pairs = bound
        if size != len(variables):  # a key bound for the first time
            pairs = [(name[prefix_length:], var) for name, var in list(variables.items())]
            bound = (len(pairs), pairs)
        for key, var in pairs:
            value = var.get()
            if value is not Ellipsis:
                event_dict.setdefault(key, value)
        return event_dict

    return merge


def core_fields(service_name: str, redactor: Redactor | None = None) -> Processor:
    """Puts ``timestamp level logger event request_id trace_id span_id service.name`` first.

    The rest of the event dict (bound context, keyword arguments) follows in its own order,
    redacted on the way when ``redactor`` is given (one pass instead of two, when no
    processor of the user's runs in between). Stdlib records bring their time (``_created``)
    and logger name (``logger``) in the dict; structlog loggers take both from here and
    from the wrapped logger's ``name``.
    """
    levels = _LEVELS
    timestamps = Timestamps()
    from_ns, from_epoch = timestamps.from_ns, timestamps.from_epoch
    current_ids = TraceIds().current
    known = redactor.cache if redactor is not None else None
    is_sensitive = redactor.is_sensitive if redactor is not None else None
    mapping = redactor.mapping if redactor is not None else None

    def add_core_fields(
        wrapped: WrappedLogger, method_name: str, event_dict: EventDict
    ) -> EventDict:
        created = event_dict.pop("_created", None)
        name = event_dict.pop("logger", None) or getattr(wrapped, "name", None)
        out: dict[str, Any] = {
            "timestamp": from_ns(time.time_ns()) if created is None else from_epoch(created),
            "level": levels.get(method_name, method_name),
        }
        if name is not None:
            out["logger"] = name
        out["event"] = event_dict.pop("event", None)
        request_id = event_dict.pop("request_id", None)
        if request_id is not None:
            out["request_id"] = request_id
        trace_id = event_dict.pop("trace_id", None)
        if trace_id is not None:  # given by the caller: a record about a finished request
            out["trace_id"] = trace_id
            out["span_id"] = event_dict.pop("span_id", None)
        else:
            ids = current_ids()
            if ids is not None:
                out["trace_id"], out["span_id"] = ids
        out["service.name"] = service_name
        if not event_dict:
            return out
        if known is None:
            out.update(event_dict)
            return out
        for key, value in event_dict.items():
            sensitive = known.get(key)
            if sensitive is None:
                sensitive = key not in CORE_KEYS and is_sensitive(key)  # type: ignore[misc]
            if sensitive:
                out[key] = REDACTED
            elif isinstance(value, dict):
                out[key] = mapping(value)  # type: ignore[misc]
            else:
                out[key] = value
        return out

    return add_core_fields


ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def exc_info_tuple(value: object) -> ExcInfo | None:
    """What ``exc_info=`` stands for: an exception, a ``sys.exc_info()`` tuple, or ``True``
    for the exception being handled. None when there is none."""
    if isinstance(value, BaseException):
        return type(value), value, value.__traceback__
    if isinstance(value, tuple) and len(value) == 3 and isinstance(value[1], BaseException):
        return value
    if value:
        info = sys.exc_info()
        if info[1] is not None:
            return info
    return None


def _scrub_quoted_messages(messages: ErrorMessages, event_dict: EventDict) -> None:
    """The line's other fields may quote the exception: the messages ``messages`` withholds
    are scrubbed from them before the exception is rendered."""
    info = exc_info_tuple(event_dict.get("exc_info"))
    if info is not None:
        withheld = messages.withheld(info[1])
        if withheld:
            _scrub_fields(event_dict, withheld)


def structured_exception(messages: ErrorMessages) -> Processor:
    """``exc_info`` → ``exception``: structlog's ``dict_tracebacks`` (an
    ``ExceptionRenderer`` with an ``ExceptionDictTransformer``), a list (the raised exception,
    then its causes) of ``{exc_type, exc_value, exc_notes, syntax_error, is_cause, is_group,
    frames: [{filename, lineno, name}]}``. Never the frames' local variables: they may hold
    secrets; never the messages ``messages`` withholds (those of database errors)."""
    transform = ExceptionDictTransformer(show_locals=False, use_rich=False, max_frames=50)

    def to_dicts(exc_info: ExcInfo) -> list[dict[str, Any]]:
        try:
            stacks = transform(exc_info)
            withheld = messages.withheld(exc_info[1])
            if withheld:
                _withhold(stacks, withheld)
        except Exception:  # an exception whose str() raises, a broken traceback...
            stacks = [
                {"exc_type": exc_info[0].__name__, "exc_value": "<unprintable>", "frames": []}
            ]
        return stacks

    render = ExceptionRenderer(to_dicts)

    def add_exception(wrapped: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        value = event_dict.pop("exc_info", None)
        if not value:
            return event_dict
        event_dict["exc_info"] = value  # for the renderer
        with contextlib.suppress(Exception):  # then the rendering below falls back too
            _scrub_quoted_messages(messages, event_dict)
        return render(wrapped, method_name, event_dict)

    return add_exception


def _withhold(stacks: list[dict[str, Any]], withheld: Withheld) -> None:
    """Replaces the withheld messages in structlog's stack dicts (groups' members included),
    recognised by type name and message, as structlog wrote them."""
    texts: dict[tuple[object, object], str] = {
        (type(e).__name__, _safe_str(e)): text for e, text in withheld
    }
    pending = list(stacks)
    while pending:
        stack = pending.pop()
        text = texts.get((stack.get("exc_type"), stack.get("exc_value")))
        if text is not None:
            stack["exc_value"] = text
            stack["exc_notes"] = []
        for member in stack.get("exceptions") or ():
            pending.extend(member)


def _scrub_fields(event_dict: EventDict, withheld: Withheld) -> None:
    """The line's other fields may quote the exception too: the event text, a logger's extras."""
    for key, value in event_dict.items():
        if key not in ("exception", "exc_info"):
            event_dict[key] = scrub(value, withheld)


def _safe_str(value: object) -> str | None:
    try:
        return str(value)
    except Exception:
        return None


def exception_text(messages: ErrorMessages) -> Processor:
    """``exc_info`` → ``exception``, the traceback as text (the console format), without the
    messages ``messages`` withholds."""

    render = ExceptionRenderer(lambda info: messages.format(info[1]).rstrip("\n"))

    def add_exception_text(
        wrapped: WrappedLogger, method_name: str, event_dict: EventDict
    ) -> EventDict:
        _scrub_quoted_messages(messages, event_dict)
        return render(wrapped, method_name, event_dict)

    return add_exception_text


def redact_sensitive(redactor: Redactor) -> Processor:
    """Replaces the values of keys that look sensitive (``password=``, ``token=``...)."""
    is_sensitive = redactor.is_sensitive
    known = redactor.cache  # the verdicts, read here without a method call per key
    mapping = redactor.mapping

    def redact(wrapped: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        for key, value in event_dict.items():
            sensitive = known.get(key)
            if sensitive is None:
                sensitive = key not in CORE_KEYS and is_sensitive(key)
            if sensitive:
                event_dict[key] = REDACTED
            elif isinstance(value, dict):
                event_dict[key] = mapping(value)
        return event_dict

    return redact


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escape_char(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


def escape_text(text: str) -> str:
    """Control characters (CR, LF, ESC...) as visible escapes: one record, one line."""
    return _CONTROL.sub(_escape_char, text)


def escape_control_characters(
    wrapped: WrappedLogger, method_name: str, event_dict: EventDict
) -> EventDict:
    """For the console format: user input cannot start a new line or send terminal codes."""
    for key, value in event_dict.items():
        if isinstance(value, str) and key != "exception":
            event_dict[key] = escape_text(value)
    return event_dict


def guarded(processor: Processor) -> Processor:
    """A user processor that raises cannot lose the line or reach the caller."""
    name = getattr(processor, "__qualname__", repr(processor))

    def run(wrapped: WrappedLogger, method_name: str, event_dict: EventDict) -> Any:
        try:
            return processor(wrapped, method_name, event_dict)
        except DropEvent:
            raise
        except Exception as exc:
            event_dict["log_processor_error"] = f"{name}: {type(exc).__name__}"
            return event_dict

    run.__qualname__ = f"guarded({name})"
    return run
