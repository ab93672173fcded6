"""SQL text for telemetry: a low-cardinality summary and text safe to record.

``describe(sql)`` is cached per distinct SQL string, so its cost is paid once per query
shape, not once per query. What it does to the text:

* placeholders (``%s``, ``%(name)s``, ``?``, ``:name``, ``$1``) are kept: the query is
  parameterised and the values travel separately;
* literals (strings, including ``E''``, ``N''``, ``X''`` and dollar-quoted ones; numbers;
  ``TRUE``/``FALSE``) become ``?``, and an unterminated literal swallows the rest of the text;
* comments are removed (sqlcommenter comments carry trace ids); whitespace is kept, so
  parameterised text without literals or comments is recorded exactly as sent;
* ``IN (...)`` lists of values or placeholders become ``IN (?)``, repeated ``VALUES`` rows
  become the first row followed by ``, ...``;
* the result is cut at ``max_length``; a text longer than the parse budget is parsed only up
  to that budget, so a 10 MB bulk insert costs what a 64 KB one does.

The summary follows the semantic conventions: operations and their targets in order of
appearance (``SELECT shop_product shop_category``), at most 255 characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

SUMMARY_MAX_LENGTH = 255
NAME_MAX_LENGTH = 64  # PostgreSQL's identifiers stop at 63 bytes; longer ones are not tables
PARSE_BUDGET_FACTOR = 8
PARSE_BUDGET_MIN = 16_384

# Dialects whose strings accept backslash escapes and double quotes ('it\'s', "text").
BACKSLASH_DIALECTS = frozenset({"mysql", "mariadb"})

_COMMON = r"""
 (?P<ws>\s+)
|(?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
|(?P<dollar>\$(?P<tag>(?:[^\W\d]\w*)?)\$.*?(?:\$(?P=tag)\$|\Z))
|(?P<placeholder>%\([^)]{0,64}\)s|%s|\$\d+|\?|(?<!:):[^\W\d]\w*)
|(?P<percent>%%)
|(?P<number>0[xX][0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)
|(?P<word>[^\W\d][\w$]*)
|(?P<other>.)
"""
# Standard SQL (PostgreSQL, SQLite, Oracle ...): '' doubles a quote, backslashes only escape
# inside E'...'; "..." and `...` are identifiers.
_STANDARD = re.compile(
    r"""
 (?P<string>[eE]'[^'\\]*(?:(?:\\.|'')[^'\\]*)*(?:'|\Z)
           |(?:[nNbBxX]|[uU]&)?'[^']*(?:''[^']*)*(?:'|\Z))
|(?P<ident>"[^"]*(?:""[^"]*)*(?:"|\Z)|`[^`]*(?:`|\Z))
|"""
    + _COMMON,
    re.S | re.X,
)
# MySQL: backslash escapes in both quote styles; "..." is a string, `...` an identifier.
_BACKSLASH = re.compile(
    r"""
 (?P<string>(?:[nNbBxX])?'[^'\\]*(?:(?:\\.|'')[^'\\]*)*(?:'|\Z)
           |"[^"\\]*(?:(?:\\.|"")[^"\\]*)*(?:"|\Z))
|(?P<ident>`[^`]*(?:`|\Z))
|"""
    + _COMMON,
    re.S | re.X,
)

# Operations that start a statement or a sub-statement.
# fmt: off
_OPERATIONS = frozenset({
    "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "UPSERT", "REPLACE", "CREATE", "ALTER",
    "DROP", "TRUNCATE", "CALL", "EXEC", "EXECUTE", "COPY", "GRANT", "REVOKE",
})
# fmt: on
# Keywords after which INSERT/UPDATE/DELETE... are not operations (FOR UPDATE, ON DELETE ...).
_NOT_AN_OPERATION_AFTER = frozenset({"FOR", "KEY", "DO", "ON", "OF", "INSTEAD", "BEFORE", "AFTER"})
# Keywords whose next name is a target (a collection).
_TARGET_BEFORE = frozenset({"FROM", "JOIN", "INTO", "UPDATE", "TABLE"})
_SKIP_BEFORE_TARGET = frozenset({"ONLY", "LATERAL", "IF", "NOT", "EXISTS", "TEMPORARY", "TEMP"})
# fmt: off
_KEYWORDS_AFTER_TARGET = frozenset({
    "WHERE", "SET", "VALUES", "ON", "USING", "INNER", "LEFT", "RIGHT", "FULL", "CROSS",
    "NATURAL", "JOIN", "GROUP", "ORDER", "LIMIT", "OFFSET", "HAVING", "WINDOW", "UNION",
    "EXCEPT", "INTERSECT", "RETURNING", "FOR", "SELECT", "DEFAULT", "AS", "FETCH", "OUTER",
})
# fmt: on
_VALUE_KINDS = frozenset({"value", "placeholder"})


@dataclass(frozen=True, eq=False)
class QueryDescription:
    """What telemetry may say about one SQL string. Compared and hashed by identity."""

    operation: str | None  # set when the query has exactly one operation
    collection: str | None  # set when it has one operation on exactly one collection
    summary: str
    text: str
    explainable: bool  # one statement, SELECT only: EXPLAIN may be run on it


Token = tuple[str, str, str]  # kind, text, the whitespace before it


def _token_value(kind: str, text: str) -> tuple[str, str]:
    if kind in ("string", "dollar", "number"):
        return "value", "?"
    if kind == "word" and text.upper() in ("TRUE", "FALSE"):
        return "value", "?"
    if kind == "percent":
        return "other", text
    return kind, text


def _tokens(sql: str, dialect: str | None) -> tuple[list[Token], bool]:
    """Tokens without comments; and whether there is one statement."""
    pattern = _BACKSLASH if dialect in BACKSLASH_DIALECTS else _STANDARD
    tokens: list[Token] = []
    space = ""
    statement_ended = False
    single = True
    for match in pattern.finditer(sql):
        kind = match.lastgroup or "other"
        if kind == "tag":  # the inner group of a dollar string: the outer one matched
            kind = "dollar"
        if kind == "ws":
            space += match.group()
            continue
        if kind == "comment":
            space = space or " "
            continue
        text = match.group()
        if kind == "dollar":
            text = "?"
        if statement_ended:
            single = False
        if kind == "other" and text == ";":
            statement_ended = True
        kind, text = _token_value(kind, text)
        tokens.append((kind, text, space))
        space = ""
    return tokens, single


def _value_item_end(tokens: list[Token], i: int) -> int:
    """Index after one value item (``?``, ``%s``, ``-?``, ``NULL``, ``DEFAULT``) at ``i``, or -1."""
    if i < len(tokens) and tokens[i][1] in ("-", "+"):
        i += 1
    if i >= len(tokens):
        return -1
    kind, text, _ = tokens[i]
    if kind in _VALUE_KINDS or (kind == "word" and text.upper() in ("NULL", "DEFAULT")):
        return i + 1
    return -1


def _value_tuple_end(tokens: list[Token], i: int) -> int:
    """Index after ``( item, item ... )`` starting at ``i``, or -1."""
    if i >= len(tokens) or tokens[i][1] != "(":
        return -1
    i = _value_item_end(tokens, i + 1)
    while i != -1 and i < len(tokens) and tokens[i][1] == ",":
        i = _value_item_end(tokens, i + 1)
    if i == -1 or i >= len(tokens) or tokens[i][1] != ")":
        return -1
    return i + 1


def _collapse_lists(tokens: list[Token]) -> list[Token]:
    out: list[Token] = []
    i = 0
    n = len(tokens)
    while i < n:
        kind, text, _ = tokens[i]
        out.append(tokens[i])
        i += 1
        if kind != "word":
            continue
        upper = text.upper()
        if upper == "IN":
            end = _value_tuple_end(tokens, i)
            if end != -1:
                out += [("other", "(", tokens[i][2]), ("value", "?", ""), ("other", ")", "")]
                i = end
        elif upper == "VALUES":
            end = _value_tuple_end(tokens, i)
            if end == -1:
                continue
            first = tokens[i:end]
            out += first
            i = end
            repeated = False
            while i < n and tokens[i][1] == ",":
                next_end = _value_tuple_end(tokens, i + 1)
                if next_end == -1:
                    break
                repeated = True
                i = next_end
            if repeated:
                out += [("other", ",", ""), ("other", "...", " ")]
    return out


def _render(tokens: list[Token]) -> str:
    return "".join(space + text for _, text, space in tokens).strip()


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in '"`':
        quote = text[0]
        return text[1:-1].replace(quote * 2, quote)
    return text


def _name_at(tokens: list[Token], i: int) -> tuple[str | None, int]:
    """A possibly qualified name (``schema.table``) at ``i``, and the index after it."""
    parts: list[str] = []
    n = len(tokens)
    while i < n:
        kind, text, _ = tokens[i]
        if kind not in ("word", "ident"):
            break
        parts.append(_unquote(text))
        if i + 2 < n and tokens[i + 1][1] == "." and tokens[i + 2][0] in ("word", "ident"):
            i += 2
            continue
        i += 1
        break
    if not parts:
        return None, i
    return ".".join(parts)[:NAME_MAX_LENGTH], i


def _summarize(tokens: list[Token]) -> tuple[list[str], list[str], list[str]]:
    """Summary parts in order, and the operations and targets among them."""
    parts: list[str] = []
    operations: list[str] = []
    targets: list[str] = []
    # Per parenthesis depth: whether an operation started there (FROM inside EXTRACT(...) or
    # TRIM(...) is not a table).
    depth_has_operation = [False]
    previous_word = ""
    i = 0
    n = len(tokens)
    while i < n:
        kind, text, _ = tokens[i]
        if kind == "other":
            if text == "(":
                depth_has_operation.append(False)
            elif text == ")" and len(depth_has_operation) > 1:
                depth_has_operation.pop()
            i += 1
            continue
        if kind != "word":
            i += 1
            continue
        upper = text.upper()
        if upper in _OPERATIONS and previous_word not in _NOT_AN_OPERATION_AFTER:
            parts.append(text)
            operations.append(text)
            depth_has_operation[-1] = True
        if upper in _TARGET_BEFORE and depth_has_operation[-1] and previous_word != "DISTINCT":
            if upper == "UPDATE" and previous_word in _NOT_AN_OPERATION_AFTER:
                previous_word = upper
                i += 1
                continue
            j = i + 1
            while j < n and tokens[j][0] == "word" and tokens[j][1].upper() in _SKIP_BEFORE_TARGET:
                j += 1
            while True:
                if (
                    j < n
                    and tokens[j][0] == "word"
                    and tokens[j][1].upper() in _KEYWORDS_AFTER_TARGET
                ):
                    break
                name, j = _name_at(tokens, j)
                if name is None:
                    break
                parts.append(name)
                targets.append(name)
                if upper != "FROM":
                    break
                # FROM a [AS] x, b y: skip an alias, continue after a comma.
                if j < n and tokens[j][0] == "word" and tokens[j][1].upper() == "AS":
                    j += 1
                if (
                    j < n
                    and tokens[j][0] in ("word", "ident")
                    and tokens[j][1].upper() not in _KEYWORDS_AFTER_TARGET
                ):
                    j += 1
                if j < n and tokens[j][1] == ",":
                    j += 1
                    continue
                break
            previous_word = upper
            i = max(j, i + 1)
            continue
        previous_word = upper
        i += 1
    return parts, operations, targets


def _summary(parts: list[str]) -> str:
    summary = ""
    for part in parts:
        candidate = f"{summary} {part}" if summary else part
        if len(candidate) > SUMMARY_MAX_LENGTH:
            break
        summary = candidate
    return summary


def _to_text(sql: Any) -> str | None:
    if isinstance(sql, str):
        return sql
    if isinstance(sql, bytes):
        return sql.decode("utf-8", "replace")
    as_string = getattr(sql, "as_string", None)  # psycopg.sql.Composed
    if as_string is not None:
        try:
            text = as_string()
        except Exception:
            return None
        return text if isinstance(text, str) else None
    return None


_UNKNOWN = QueryDescription(None, None, "SQL", "", False)


def describe(sql: Any, max_length: int = 2048, dialect: str | None = None) -> QueryDescription:
    """The description of one SQL string (cached per string)."""
    if type(sql) is not str:
        sql = _to_text(sql)
        if sql is None:
            return _UNKNOWN
    budget = max(max_length * PARSE_BUDGET_FACTOR, PARSE_BUDGET_MIN)
    if len(sql) > budget:
        # The cache keeps its keys: key it by the part that is parsed, not by megabytes.
        return _describe(sql[:budget], max_length, dialect, True)
    return _describe(sql, max_length, dialect, False)


def describe_uncached(
    sql: str, max_length: int = 2048, dialect: str | None = None, cut: bool = False
) -> QueryDescription:
    """``describe`` without the cache; ``cut`` says ``sql`` is the start of a longer text."""
    tokens, single = _tokens(sql, dialect)
    tokens = _collapse_lists(tokens)
    text = _render(tokens)
    if cut and len(text) < max_length:
        text += " ..."
    parts, operations, targets = _summarize(tokens)
    if not operations:
        first = next((t for k, t, _ in tokens if k == "word"), None)
        if first is not None:
            first = first[:NAME_MAX_LENGTH]
            parts, operations = [first, *parts], [first]
    summary = _summary(parts) or "SQL"
    kinds = {o.upper() for o in operations}
    # One kind of operation (a SELECT with sub-SELECTs is a SELECT) on one collection.
    operation = operations[0] if len(kinds) == 1 else None
    collection = targets[0] if operation is not None and len(set(targets)) == 1 else None
    first_word = next((t.upper() for k, t, _ in tokens if k == "word"), None)
    explainable = single and not cut and kinds == {"SELECT"} and first_word in ("SELECT", "WITH")
    return QueryDescription(operation, collection, summary, text[:max_length], explainable)


_describe = lru_cache(maxsize=4096)(describe_uncached)


def scrub_literals(text: str) -> str:
    """``text`` with every string and number literal replaced by ``?``; the rest kept verbatim."""
    out: list[str] = []
    for match in _STANDARD.finditer(text):
        kind = match.lastgroup
        out.append("?" if kind in ("string", "dollar", "number") else match.group())
    return "".join(out)
