"""Which exception messages telemetry withholds (``otel_django.db.errors``), on real errors of
PostgreSQL, SQLite and SQLAlchemy: the values they quote never reach the text, the type,
SQLSTATE and frames do, and RECORD_DATABASE_ERROR_MESSAGES brings the message back."""

from __future__ import annotations

import sqlite3
import traceback
from collections.abc import Callable

import pytest
from django.db import DatabaseError, DataError, connections

from otel_django.db.errors import WITHHELD, ErrorMessages

CANARY = "errmsg-canary-4d2b"
TABLE = "no_such_table_errmsg_canary_4d2b"  # SQLite quotes names, not values
PG_ALIAS = "postgres"


def raised(action: Callable[[], object]) -> BaseException:
    try:
        action()
    except BaseException as exc:
        return exc
    pytest.fail("nothing was raised")


def pg_query(sql: str, params: list[object] | None = None) -> Callable[[], object]:
    def run() -> object:
        with connections[PG_ALIAS].cursor() as cursor:
            return cursor.execute(sql, params)

    return run


def sqlite_query(sql: str) -> Callable[[], object]:
    def run() -> object:
        with connections["default"].cursor() as cursor:
            return cursor.execute(sql)

    return run


@pytest.mark.smoke
@pytest.mark.postgres
@pytest.mark.django_db(databases=["default", "postgres"])
@pytest.mark.parametrize(
    ("sql", "params"),
    [(f"SELECT '{CANARY}'::int", None), ("SELECT %s::int", [CANARY])],
    ids=["literal", "parameter"],
)
def test_a_postgresql_error_keeps_its_type_sqlstate_and_frames_not_its_values(
    sql: str, params: list[object] | None
) -> None:
    error = raised(pg_query(sql, params))
    assert isinstance(error, DataError)
    # What would leak: the message, its LINE 1 detail, the driver's error chained under it.
    full = "".join(traceback.format_exception(error))
    assert CANARY in str(error) and "LINE 1" in str(error) and CANARY in str(error.__cause__)

    messages = ErrorMessages()
    withheld = dict((id(e), text) for e, text in messages.withheld(error))
    assert set(withheld) == {id(error), id(error.__cause__)}
    assert messages.message(error) == f"SQLSTATE 22P02 {WITHHELD}"
    text = messages.format(error)
    assert CANARY not in text and "LINE 1" not in text
    assert "django.db.utils.DataError: SQLSTATE 22P02 (message withheld)" in text
    assert "psycopg.errors.InvalidTextRepresentation: SQLSTATE 22P02" in text
    assert "The above exception was the direct cause of the following exception" in text
    assert "in run" in text and "return cursor.execute(sql, params)" in text  # frames, source
    assert text.count("Traceback (most recent call last)") == full.count(
        "Traceback (most recent call last)"
    )
    attributes = messages.span_attributes(error)
    assert attributes is not None and CANARY not in str(attributes)

    allowed = ErrorMessages(record_database_messages=True)
    assert allowed.withheld(error) == []
    assert allowed.format(error) == full
    assert allowed.span_attributes(error) is None


@pytest.mark.smoke
@pytest.mark.django_db
def test_sqlite_errors_and_bare_driver_errors_are_withheld() -> None:
    error = raised(sqlite_query(f"SELECT * FROM {TABLE}"))
    assert isinstance(error, DatabaseError) and TABLE in str(error)
    text = ErrorMessages().format(error)
    assert TABLE not in text
    assert "django.db.utils.OperationalError: (message withheld)" in text
    assert "sqlite3.OperationalError: (message withheld)" in text

    # A DB-API driver's error, raised without Django around it.
    bare = raised(lambda: sqlite3.connect(":memory:").execute(f"SELECT * FROM {TABLE}"))
    assert TABLE in str(bare)
    assert ErrorMessages().message(bare) == WITHHELD
    assert TABLE not in ErrorMessages().format(bare)


@pytest.mark.django_db
def test_chains_and_groups_withhold_the_database_errors_only() -> None:
    def handled_then_failed() -> None:
        try:
            sqlite_query(f"SELECT * FROM {TABLE}")()
        except DatabaseError:
            raise ValueError("the report could not be built") from None

    def failed_while_handling() -> None:
        try:
            sqlite_query(f"SELECT * FROM {TABLE}")()
        except DatabaseError:
            raise KeyError("missing-key-7")  # noqa: B904 - the implicit chain is the subject

    def in_a_group() -> None:
        errors: list[Exception] = [RuntimeError("sibling-kept")]
        try:
            sqlite_query(f"SELECT * FROM {TABLE}")()
        except DatabaseError as exc:
            errors.append(exc)
        raise ExceptionGroup("tasks failed", errors)

    suppressed = raised(handled_then_failed)
    assert ErrorMessages().withheld(suppressed) == []  # `from None`: nothing of it is shown

    during = raised(failed_while_handling)
    assert isinstance(during.__context__, DatabaseError)
    assert TABLE in "".join(traceback.format_exception(during))
    text = ErrorMessages().format(during)
    assert TABLE not in text and "missing-key-7" in text
    assert "During handling of the above exception, another exception occurred" in text

    group = raised(in_a_group)
    assert TABLE in "".join(traceback.format_exception(group))
    text = ErrorMessages().format(group)
    assert TABLE not in text and "sibling-kept" in text
    assert "django.db.utils.OperationalError: (message withheld)" in text
    assert ErrorMessages().message(group) == str(group)


def test_sqlalchemy_statement_errors_withhold_statement_and_parameters() -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    engine = sqlalchemy.create_engine("sqlite://")
    with engine.connect() as connection:
        error = raised(
            lambda: connection.execute(
                sqlalchemy.text(f"SELECT * FROM {TABLE} WHERE name = :name"), {"name": CANARY}
            )
        )
    assert isinstance(error, sqlalchemy.exc.OperationalError)
    assert CANARY in str(error) and TABLE in str(error)  # [parameters: ...], [SQL: ...]
    text = ErrorMessages().format(error)
    assert CANARY not in text and f"no such table: {TABLE}" not in text
    assert "sqlalchemy.exc.OperationalError: (message withheld)" in text


def test_other_exceptions_are_formatted_as_python_does() -> None:
    error = raised(lambda: {}["some-key"])
    messages = ErrorMessages()
    assert messages.withheld(error) == []
    assert messages.format(error) == "".join(traceback.format_exception(error))
    assert messages.message(error) == "'some-key'"
    assert messages.span_attributes(error) is None
