"""The servers' access lines, when they reach otel_django's pipeline.

gunicorn (``gunicorn.access``, with ``--access-logfile``), uvicorn (``uvicorn.access``, on by
default) and granian (``granian.access``, with ``--access-log``) log each request after its
response has been sent, when the request's context is gone: their lines cannot carry
``request_id`` or ``trace_id``. otel_django's own access line (``otel_django.access``) has what
they have and those ids, so while ``ACCESS_LOG`` is on their lines are left out, and the first
one left out in a process says so. With ``ACCESS_LOG`` off they are kept, with the values of
sensitive query parameters redacted, as in otel_django's own lines.

uvicorn's ``color_message`` extra (its message again, with ANSI colours and an unformatted
template) is never rendered: :mod:`otel_django.logging.output` skips it.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Mapping

from ..redaction import REDACTED, Redactor

SERVER_ACCESS_LOGGERS = frozenset({"gunicorn.access", "uvicorn.access", "granian.access"})

# Fields that hold a bare query string (no ``?``): gunicorn's ``%(q)s`` and its environ atom,
# granian's ``%(query_string)s``.
_BARE_QUERY_KEYS = frozenset({"q", "{query_string}e", "query_string"})
# A query string inside a request line, a URL or a referer: up to a space or a quote.
_QUERY = re.compile(r"\?([^\s\"'#]*)")
# gunicorn's request and response header atoms: ``{cookie}i``, ``{set-cookie}o``.
_HEADER_ATOM = re.compile(r"^\{(.+)\}[io]$")


def _redact_text(text: str, redactor: Redactor) -> str:
    if "?" not in text:
        return text
    return _QUERY.sub(lambda m: "?" + redactor.query_string(m.group(1)), text)


def _redact_field(key: object, value: object, redactor: Redactor) -> object:
    if not isinstance(value, str):
        return value
    if isinstance(key, str):
        if key in _BARE_QUERY_KEYS:
            return redactor.query_string(value)
        header = _HEADER_ATOM.match(key)
        if header is not None and redactor.is_sensitive(header.group(1)):
            return REDACTED
    return _redact_text(value, redactor)


def access_message(record: logging.LogRecord, redactor: Redactor) -> str:
    """The record's message with the values of sensitive query parameters redacted.

    The arguments are redacted before they are put into the message (gunicorn passes a dict of
    atoms, granian a dict, uvicorn a tuple), so a custom format cannot bring a query through.
    """
    try:
        return _redact_text(_format_redacted(record, redactor), redactor)
    except Exception:  # a format that does not match its arguments: redact what it gives
        try:
            message = record.getMessage()
        except Exception:
            message = f"{record.msg!s} {record.args!r}"
        return _redact_text(message, redactor)


def _format_redacted(record: logging.LogRecord, redactor: Redactor) -> str:
    args = record.args
    if isinstance(args, Mapping):
        # A copy keeps gunicorn's atoms class (its lookup of missing atoms as "-").
        redacted = copy.copy(args)
        for key, value in args.items():
            new = _redact_field(key, value, redactor)
            if new is not value:
                redacted[key] = new  # type: ignore[index]
        return str(record.msg) % redacted
    if isinstance(args, tuple) and args:
        return str(record.msg) % tuple(_redact_field(None, a, redactor) for a in args)
    return record.getMessage()


def left_out_notice(logger_name: str) -> logging.LogRecord:
    """The line that says, once per process, that a server's access lines are left out."""
    return logging.LogRecord(
        "otel_django",
        logging.INFO,
        __file__,
        0,
        "%s lines are left out: otel_django.access logs each request, with its request_id "
        "and trace_id (ACCESS_LOG=false keeps the server's lines instead)",
        (logger_name,),
        None,
    )
