"""SQL text for telemetry: a low-cardinality summary and text safe to record.

``describe(sql)`` is cached per distinct SQL string, so its cost is paid once per query
shape, not once per query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

_LEADING_COMMENTS = re.compile(r"^\s*(?:(?:/\*.*?\*/|--[^\n]*\n)\s*)*", re.S)
_FIRST_WORD = re.compile(r"[A-Za-z]+")
_TABLE_AFTER = re.compile(
    r"\b(?:FROM|INTO|UPDATE|JOIN|TABLE)\s+(?:ONLY\s+)?((?:\"[^\"]+\"|`[^`]+`|[A-Za-z_][\w$]*)"
    r"(?:\.(?:\"[^\"]+\"|`[^`]+`|[A-Za-z_][\w$]*))?)",
    re.I,
)


@dataclass(frozen=True)
class QueryDescription:
    operation: str | None
    collection: str | None
    summary: str
    text: str


def _unquote(name: str) -> str:
    return ".".join(part.strip('"`') for part in name.split("."))


@lru_cache(maxsize=2048)
def describe(sql: str, max_length: int = 2048) -> QueryDescription:
    body = _LEADING_COMMENTS.sub("", sql, count=1)
    first = _FIRST_WORD.match(body)
    operation = first.group(0).upper() if first else None
    table_match = _TABLE_AFTER.search(body)
    collection = _unquote(table_match.group(1)) if table_match else None
    summary = " ".join(p for p in (operation, collection) if p) or "SQL"
    text = sql if len(sql) <= max_length else sql[:max_length]
    return QueryDescription(operation, collection, summary[:255], text)
