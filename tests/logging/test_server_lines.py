"""The servers' access lines in the pipeline, as gunicorn, uvicorn and granian log them.

Proves: while ``ACCESS_LOG`` is on they are left out (otel_django.access has each request, with
its ids), and the first one left out says so, once per logger; with ``ACCESS_LOG`` off they are
kept with sensitive query values redacted, in every format (gunicorn's atoms, bare query
atoms, header atoms, referers; uvicorn's arguments; granian's dict); uvicorn's
``color_message`` never reaches a line. The real servers: tests/servers/test_real_servers.py.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest
from gunicorn.config import Config as GunicornConfig
from gunicorn.glogging import SafeAtoms

from otel_django.config import Config
from otel_django.logging.servers import SERVER_ACCESS_LOGGERS, access_message
from otel_django.redaction import REDACTED, Redactor
from tests.support.lines import Lines

SECRET = "SEKRIT-42"
GUNICORN_FORMAT = GunicornConfig().access_log_format  # gunicorn's default


def gunicorn_atoms(**changes: str) -> SafeAtoms:
    """The atoms gunicorn's ``Logger.atoms`` builds for one request (the ones formats use)."""
    atoms = {
        "h": "127.0.0.1",
        "l": "-",
        "u": "-",
        "t": "[01/Dec/2026:10:00:00 +0000]",
        "r": f"GET /api/?api_key={SECRET}&password={SECRET}&page=2 HTTP/1.1",
        "s": "200",
        "m": "GET",
        "U": "/api/",
        "q": f"api_key={SECRET}&page=2",
        "H": "HTTP/1.1",
        "b": "12",
        "B": 12,
        "f": f"https://shop.example/?token={SECRET}",
        "a": "curl/8",
        "{cookie}i": f"sessionid={SECRET}",
        "{query_string}e": f"api_key={SECRET}&page=2",
        **changes,
    }
    return SafeAtoms(atoms)


def gunicorn_access(fmt: str = GUNICORN_FORMAT, **changes: str) -> None:
    logging.getLogger("gunicorn.access").info(fmt, gunicorn_atoms(**changes))


def uvicorn_access() -> None:
    # As uvicorn's h11 and httptools protocols log it.
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", f"/p/?token={SECRET}&q=1", "1.1", 200
    )


def granian_access() -> None:
    # granian's log_request: the format, and a dict of fields.
    logging.getLogger("granian.access").info(
        '%(addr)s - "%(method)s %(path)s?%(query_string)s %(protocol)s" %(status)d',
        {
            "addr": "127.0.0.1",
            "method": "GET",
            "path": "/p/",
            "query_string": f"secret={SECRET}&q=1",
            "protocol": "HTTP/1.1",
            "status": 200,
        },
    )


@pytest.fixture
def access_log(override_config: Callable[..., Config]) -> Callable[[bool], None]:
    """``access_log(False)``: logging configured again with ``ACCESS_LOG`` off."""

    def apply(on: bool) -> None:
        override_config(access_log=on)

    return apply


def test_server_access_lines_are_left_out_while_access_log_is_on(
    lines: Lines, access_log: Callable[[bool], None]
) -> None:
    access_log(True)
    for _ in range(3):
        gunicorn_access()
        uvicorn_access()
        granian_access()
    logging.getLogger("gunicorn.error").info("Booting worker with pid: %s", 7)
    out = lines()
    notices = [line for line in out if line["logger"] == "otel_django"]
    assert [line["event"].split()[0] for line in notices] == [
        "gunicorn.access",
        "uvicorn.access",
        "granian.access",
    ]
    assert all("ACCESS_LOG=false" in line["event"] for line in notices)
    assert not [line for line in out if line["logger"] in SERVER_ACCESS_LOGGERS]
    assert out[-1]["event"] == "Booting worker with pid: 7"  # other server lines stay
    assert SECRET not in json.dumps(out)


def test_kept_server_access_lines_are_redacted(
    lines: Lines, access_log: Callable[[bool], None]
) -> None:
    access_log(False)
    gunicorn_access()
    gunicorn_access('%(m)s %(U)s?%(q)s "%({cookie}i)s" %({query_string}e)s')
    uvicorn_access()
    granian_access()
    out = lines()
    assert SECRET not in json.dumps(out)
    events = [line["event"] for line in out]
    assert events == [
        f'127.0.0.1 - - [01/Dec/2026:10:00:00 +0000] "GET /api/?api_key={REDACTED}'
        f'&password={REDACTED}&page=2 HTTP/1.1" 200 12 "https://shop.example/?token={REDACTED}"'
        ' "curl/8"',
        f'GET /api/?api_key={REDACTED}&page=2 "{REDACTED}" api_key={REDACTED}&page=2',
        f'127.0.0.1:5000 - "GET /p/?token={REDACTED}&q=1 HTTP/1.1" 200',
        f'127.0.0.1 - "GET /p/?secret={REDACTED}&q=1 HTTP/1.1" 200',
    ]
    assert [line["logger"] for line in out] == [
        "gunicorn.access",
        "gunicorn.access",
        "uvicorn.access",
        "granian.access",
    ]


def test_a_format_that_does_not_fit_its_arguments_is_redacted_too() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 0, "%s %s", (f"/x?password={SECRET}",), None
    )
    message = access_message(record, Redactor())
    assert SECRET not in message and f"password={REDACTED}" in message


def test_color_message_is_never_rendered(lines: Lines) -> None:
    # As uvicorn's server logs its start: the message again, with ANSI codes, unformatted.
    logging.getLogger("uvicorn.error").info(
        "Started server process [%d]",
        4242,
        extra={"color_message": "Started server process [\x1b[36m%d\x1b[0m]"},
    )
    (line,) = lines()
    assert line["event"] == "Started server process [4242]"
    assert "color_message" not in line
