"""Database errors in telemetry: their type, SQLSTATE and frames, never their message.

A database error's message quotes the values of the statement that failed: PostgreSQL's
``invalid input syntax for type integer: "…"`` with its ``LINE 1: SELECT '…'::int`` detail,
``Key (email)=(…) already exists``, SQLite's ``near "…": syntax error``, SQLAlchemy's
``[parameters: …]``. This module is the one place that decides which messages of an
exception's chain telemetry withholds. Every sink asks :class:`ErrorMessages`: the request
and task spans' exception events, log lines (JSON and console), the OTLP log records made
from them, and Sentry events.

Withheld are the messages (and notes) of

* instances of Django's ``django.db.Error`` (every backend's errors, wrapped), of the drivers'
  DB-API ``Error`` classes and of SQLAlchemy's ``StatementError``;
* the exception a Django or SQLAlchemy error was raised from (its ``__cause__``, else its
  shown ``__context__``): both chain the driver's error, message included, under their own,
  and the driver may be one this list does not name.

Each becomes :func:`replacement`: ``SQLSTATE 22P02 (message withheld)``. The type and the
frames stay. ``RECORD_DATABASE_ERROR_MESSAGES`` turns withholding off.
"""

from __future__ import annotations

import builtins
import sys
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .. import _compat

if TYPE_CHECKING:
    from ..config import Config

WITHHELD = "(message withheld)"
Withheld = list[tuple[BaseException, str]]
"""Withheld exceptions of a chain, each with the text shown instead of its message."""

# The error classes whose messages are withheld, as (module, attribute): Django's, SQLAlchemy's,
# and the DB-API base class of each driver Django or SQLAlchemy commonly runs on. Looked up in
# sys.modules only: nothing is imported for this, and a class whose module was never imported
# has no instances.
DATABASE_ERRORS: tuple[tuple[str, str], ...] = (
    ("django.db", "Error"),
    ("sqlalchemy.exc", "StatementError"),
    ("sqlite3", "Error"),
    ("psycopg", "Error"),
    ("psycopg2", "Error"),
    ("MySQLdb", "Error"),
    ("pymysql", "Error"),
    ("oracledb", "Error"),
    ("cx_Oracle", "Error"),
    ("pyodbc", "Error"),
)
# Those of them that wrap a driver's error, chained (Django's DatabaseErrorWrapper, SQLAlchemy's
# DBAPIError): the exception they were raised from is that error.
WRAPPERS = DATABASE_ERRORS[:2]


def database_error_classes(
    names: tuple[tuple[str, str], ...] = DATABASE_ERRORS,
) -> tuple[type[BaseException], ...]:
    found = []
    for module_name, attribute in names:
        cls = getattr(sys.modules.get(module_name), attribute, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            found.append(cls)
    return tuple(found)


def sqlstate(exception: BaseException) -> str | None:
    """The SQLSTATE of a database error (psycopg's ``sqlstate``, psycopg2's ``pgcode``), read
    from the error or the driver's error it wraps."""
    for candidate in (exception, exception.__cause__):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(code, str):
            return code
    return None


def replacement(exception: BaseException) -> str:
    """What telemetry shows instead of a withheld message."""
    code = sqlstate(exception)
    return f"SQLSTATE {code} {WITHHELD}" if code else WITHHELD


# Built in from Python 3.11, the oldest supported.
_GROUPS = tuple(c for c in (getattr(builtins, "BaseExceptionGroup", None),) if isinstance(c, type))


def _members(exception: BaseException) -> Sequence[BaseException]:
    return getattr(exception, "exceptions", ()) if isinstance(exception, _GROUPS) else ()


def _linked(exception: BaseException) -> list[BaseException]:
    """The exceptions shown with ``exception``: its cause, its context unless suppressed (as
    Python, structlog and Sentry walk the chain) and a group's members."""
    linked = [] if exception.__cause__ is None else [exception.__cause__]
    if exception.__context__ is not None and not exception.__suppress_context__:
        linked.append(exception.__context__)
    linked.extend(_members(exception))
    return linked


def _raised_from(exception: BaseException) -> BaseException | None:
    if exception.__cause__ is not None:
        return exception.__cause__
    return None if exception.__suppress_context__ else exception.__context__


class ErrorMessages:
    """Which exception messages telemetry records. Each sink builds one from the configuration."""

    __slots__ = ("record_database_messages",)

    def __init__(self, record_database_messages: bool = False) -> None:
        self.record_database_messages = record_database_messages

    @classmethod
    def from_config(cls, config: Config) -> ErrorMessages:
        return cls(config.db.record_database_error_messages)

    def withheld(self, exception: BaseException) -> Withheld:
        """The exceptions of ``exception``'s chain (causes, contexts, members of groups) whose
        message is withheld, each with its replacement; empty when nothing is."""
        if self.record_database_messages:
            return []
        classes = database_error_classes()
        if not classes:
            return []
        wrappers = database_error_classes(WRAPPERS)
        withheld: dict[int, tuple[BaseException, str]] = {}
        seen: dict[int, BaseException] = {}  # holds the objects, so that ids stay unique
        pending = [exception]
        while pending:
            current = pending.pop()
            if id(current) in seen:
                continue
            seen[id(current)] = current
            if isinstance(current, classes):
                withheld[id(current)] = (current, replacement(current))
                origin = _raised_from(current) if isinstance(current, wrappers) else None
                if origin is not None and id(origin) not in withheld:
                    withheld[id(origin)] = (origin, replacement(origin))
            pending.extend(_linked(current))
        return list(withheld.values())

    def message(self, exception: BaseException) -> str:
        """``str(exception)``, or its replacement when withheld."""
        return _message(exception, self.withheld(exception))

    def format(self, exception: BaseException) -> str:
        """The traceback as Python prints it (chained exceptions, groups, source lines), with
        the withheld messages replaced."""
        try:
            return _format(exception, self.withheld(exception))
        except Exception:  # fail closed: frames without any message
            return _types_and_frames(exception)

    def span_attributes(self, exception: BaseException) -> dict[str, str] | None:
        """Attributes overriding the SDK's in ``span.record_exception``; None when nothing is
        withheld (the SDK's own are right then)."""
        try:
            withheld = self.withheld(exception)
            if not withheld:
                return None
            return {
                "exception.message": _message(exception, withheld),
                "exception.stacktrace": _format(exception, withheld),
            }
        except Exception:  # fail closed: frames without any message
            return {
                "exception.message": WITHHELD,
                "exception.stacktrace": _types_and_frames(exception),
            }


SCRUB_MIN_LENGTH = 4  # shorter messages are not looked for in text: they would match anything


def scrub(value: object, withheld: Withheld) -> object:
    """``value`` (a string, or dicts and lists of them) with the withheld messages, as
    ``str()`` and ``repr()`` show them, replaced wherever they are quoted: in a line that
    quotes the exception it carries (Celery's ``Task … raised unexpected: DataError('…')``
    and the traceback it adds), in a Sentry event's log entry."""
    shown = _shown(withheld)
    return _scrub(value, shown, 4) if shown else value


def _scrub(value: object, shown: list[tuple[str, str]], depth: int) -> object:
    if isinstance(value, str):
        for quoted, instead in shown:
            if quoted in value:
                value = value.replace(quoted, instead)
        return value
    if depth <= 0:
        return value
    if isinstance(value, dict):
        return {k: _scrub(v, shown, depth - 1) for k, v in value.items()}
    if type(value) is list:
        return [_scrub(v, shown, depth - 1) for v in value]
    if type(value) is tuple:
        return tuple(_scrub(v, shown, depth - 1) for v in value)
    return value


def _shown(withheld: Withheld) -> list[tuple[str, str]]:
    pairs = []
    for exception, text in withheld:
        try:
            quoted = [(repr(exception), f"{type(exception).__name__}({text!r})")]
            quoted.append((str(exception), text))
        except Exception:  # an exception whose str() raises shows no message anywhere
            quoted = []
        pairs.extend(quoted)
    return [(shown, instead) for shown, instead in pairs if len(shown) >= SCRUB_MIN_LENGTH]


def _message(exception: BaseException, withheld: Withheld) -> str:
    for candidate, text in withheld:
        if candidate is exception:
            return text
    return str(exception)


def _format(exception: BaseException, withheld: Withheld) -> str:
    if not withheld:
        return "".join(traceback.format_exception(exception))
    formatted = traceback.TracebackException.from_exception(exception)
    if not _replace_messages(formatted, exception, {id(e): text for e, text in withheld}):
        return _types_and_frames(exception)
    return "".join(formatted.format())


def _replace_messages(
    formatted: traceback.TracebackException, exception: BaseException, withheld: dict[int, str]
) -> bool:
    """Replaces the messages kept by ``TracebackException`` (private: ``_compat``) of the
    withheld exceptions. False when it cannot: the caller then shows less, never the message."""
    pending = [(formatted, exception)]
    seen: set[int] = set()
    while pending:
        node, current = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        text = withheld.get(id(current))
        if text is not None and not _compat.replace_exception_text(node, text):
            return False
        pairs: list[tuple[traceback.TracebackException | None, BaseException | None]] = [
            (node.__cause__, current.__cause__),
            (node.__context__, current.__context__),
        ]
        pairs.extend(zip(getattr(node, "exceptions", None) or (), _members(current), strict=False))
        for child, child_exception in pairs:
            if child is not None and child_exception is not None:
                pending.append((child, child_exception))
    return True


def _types_and_frames(exception: BaseException) -> str:
    frames = "".join(traceback.format_tb(exception.__traceback__))
    name = f"{type(exception).__module__}.{type(exception).__qualname__}"
    return f"Traceback (most recent call last):\n{frames}{name}: {WITHHELD}\n"
