"""EXPLAIN for slow SELECTs: plain ``EXPLAIN`` on PostgreSQL, ``EXPLAIN QUERY PLAN`` on SQLite.

Never ``ANALYZE``: the query is planned, not run again. On PostgreSQL the EXPLAIN runs on the
query's own connection inside ``BEGIN``/``ROLLBACK`` (no transaction open) or a savepoint
rolled back and released (transaction open), with ``SET LOCAL statement_timeout`` as its time
budget, so the application's transaction ends exactly as it would have. It is skipped when
the transaction has failed or a command is in progress. On SQLite a progress handler aborts it
at the time budget. The cursors used are the driver's own, so the EXPLAIN passes through no
query observer and counts neither as a query nor for N+1.

Plans can contain the query's parameter values (``Filter: (email = 'x'::text)``): every line
that is not a plan node has its literals replaced by ``?``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from .sql import scrub_literals

logger = logging.getLogger("otel_django.db")

PLAN_MAX_LENGTH = 4096
SAVEPOINT = "otel_django_explain"
# connection.info.transaction_status, the same numbers in psycopg 2 and 3.
_IDLE, _IN_TRANSACTION = 0, 2

CursorFactory = Callable[[], Any]


def explain_postgresql(
    raw_connection: Any, make_cursor: CursorFactory, sql: str, params: Any, timeout_ms: float
) -> str | None:
    """The plan of ``sql``, or None when it cannot be had safely. Never raises."""
    try:
        status = raw_connection.info.transaction_status
        if status == _IDLE:
            # Without autocommit the driver opens the transaction itself before EXPLAIN.
            begin = ("BEGIN",) if getattr(raw_connection, "autocommit", True) else ()
            end: Sequence[str] = ("ROLLBACK",)
        elif status == _IN_TRANSACTION:
            begin = (f"SAVEPOINT {SAVEPOINT}",)
            end = (f"ROLLBACK TO SAVEPOINT {SAVEPOINT}", f"RELEASE SAVEPOINT {SAVEPOINT}")
        else:  # a command in progress, a failed transaction, a broken connection
            return None
        cursor = make_cursor()
        try:
            for statement in begin:
                cursor.execute(statement)
            try:
                cursor.execute(f"SET LOCAL statement_timeout = {max(1, int(timeout_ms))}")
                if params is None:
                    cursor.execute("EXPLAIN " + sql)
                else:
                    cursor.execute("EXPLAIN " + sql, params)
                rows = cursor.fetchall()
            finally:
                for statement in end:
                    cursor.execute(statement)
        finally:
            cursor.close()
        return scrub_plan("\n".join(str(row[0]) for row in rows))
    except Exception:
        logger.debug("EXPLAIN failed", exc_info=True)
        return None


def explain_sqlite(
    raw_connection: Any, make_cursor: CursorFactory, sql: str, params: Any, timeout_ms: float
) -> str | None:
    """The ``EXPLAIN QUERY PLAN`` tree of ``sql``, or None. Never raises."""
    try:
        deadline = time.monotonic() + timeout_ms / 1000.0

        def past_deadline() -> int:
            return 1 if time.monotonic() > deadline else 0

        set_handler = getattr(raw_connection, "set_progress_handler", None)
        if set_handler is not None:
            set_handler(past_deadline, 1000)
        try:
            cursor = make_cursor()
            try:
                if params is None:
                    cursor.execute("EXPLAIN QUERY PLAN " + sql)
                else:
                    cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
                rows = cursor.fetchall()
            finally:
                cursor.close()
        finally:
            if set_handler is not None:
                set_handler(None, 0)
        depth: dict[int, int] = {0: -1}
        lines = []
        for node_id, parent, _, detail in rows:
            depth[node_id] = depth.get(parent, -1) + 1
            lines.append("  " * depth[node_id] + str(detail))
        return scrub_plan("\n".join(lines), node_marker=None)
    except Exception:
        logger.debug("EXPLAIN QUERY PLAN failed", exc_info=True)
        return None


Explain = Callable[[Any, CursorFactory, str, Any, float], str | None]


def explain_for(vendor: str) -> Explain | None:
    """The EXPLAIN for a Django vendor or SQLAlchemy dialect (``postgresql``, ``sqlite``), or
    None where there is none."""
    if vendor == "postgresql":
        return explain_postgresql
    if vendor == "sqlite":
        return explain_sqlite
    return None


def scrub_plan(plan: str, node_marker: str | None = "(cost=") -> str:
    """The plan with literals replaced in every line but plan nodes; cut at PLAN_MAX_LENGTH."""
    lines = []
    for line in plan.splitlines():
        if node_marker is not None and node_marker in line:
            lines.append(line)
        else:
            lines.append(scrub_literals(line))
    return "\n".join(lines)[:PLAN_MAX_LENGTH]
