"""The SQL sanitizer and summary: literals never survive, placeholders and structure do."""

from __future__ import annotations

import string

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from otel_django.db.explain import scrub_plan
from otel_django.db.sql import (
    SUMMARY_MAX_LENGTH,
    describe,
    describe_uncached,
    scrub_literals,
)

CANARY = "zq7canary"


@pytest.mark.parametrize(
    ("sql", "text"),
    [
        # Parameterised text is recorded as sent.
        (
            'SELECT "shop_product"."id" FROM "shop_product" WHERE "shop_product"."id" = %s',
            'SELECT "shop_product"."id" FROM "shop_product" WHERE "shop_product"."id" = %s',
        ),
        (
            "SELECT * FROM t WHERE a = %(email)s AND b = $1 AND c = :name AND d = ?",
            "SELECT * FROM t WHERE a = %(email)s AND b = $1 AND c = :name AND d = ?",
        ),
        (
            "SELECT x::text, y FROM t WHERE z LIKE '%%' || %s",
            "SELECT x::text, y FROM t WHERE z LIKE ? || %s",
        ),
        ("SELECT a,\n       b\nFROM t\nWHERE c = %s", "SELECT a,\n       b\nFROM t\nWHERE c = %s"),
        # Literals become ?.
        (f"SELECT * FROM t WHERE a = '{CANARY}'", "SELECT * FROM t WHERE a = ?"),
        (f"SELECT * FROM t WHERE a = 'it''s {CANARY}'", "SELECT * FROM t WHERE a = ?"),
        (f"SELECT * FROM t WHERE a = E'it\\'s {CANARY}'", "SELECT * FROM t WHERE a = ?"),
        (f"SELECT $${CANARY}$$, $fn${CANARY}$$ {CANARY}$fn$", "SELECT ?, ?"),
        (
            "SELECT 42, -3.5e10, .5, 0xDEADBEEF, X'ff00', B'0101', N'x'",
            "SELECT ?, -?, ?, ?, ?, ?, ?",
        ),
        (
            "SELECT * FROM t2 WHERE flag = TRUE OR other = false",
            "SELECT * FROM t2 WHERE flag = ? OR other = ?",
        ),
        ("SELECT DATE '2024-01-01', INTERVAL '1 day'", "SELECT DATE ?, INTERVAL ?"),
        (f"SELECT * FROM t WHERE a = '{CANARY}", "SELECT * FROM t WHERE a = ?"),  # unterminated
        # Comments are removed: sqlcommenter puts trace ids there.
        (f"/* traceparent='00-{CANARY}' */ SELECT 1 -- {CANARY}\n FROM t", "SELECT ? \n FROM t"),
        # IN lists and repeated VALUES rows collapse.
        (
            "SELECT * FROM t WHERE id IN (1, 2, 3, -4) AND k IN (%s, %s)",
            "SELECT * FROM t WHERE id IN (?) AND k IN (?)",
        ),
        (
            "SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE v = 1)",
            "SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE v = ?)",
        ),
        (
            "INSERT INTO t (a, b) VALUES (%s, %s), (%s, %s), (%s, NULL)",
            "INSERT INTO t (a, b) VALUES (%s, %s), ...",
        ),
        ("INSERT INTO t (a, b) VALUES ('x', 1)", "INSERT INTO t (a, b) VALUES (?, ?)"),
        # Identifiers with digits are not numbers.
        ('SELECT "t1"."col2", t3.c4 FROM t1', 'SELECT "t1"."col2", t3.c4 FROM t1'),
    ],
)
def test_text_keeps_placeholders_and_replaces_literals(sql: str, text: str) -> None:
    assert describe_uncached(sql).text == text


def test_mysql_strings_take_backslash_escapes_and_double_quotes() -> None:
    sql = f"SELECT * FROM t WHERE a = 'x\\' {CANARY}' AND b = \"{CANARY}\" AND `c` = 1"
    assert (
        describe_uncached(sql, dialect="mysql").text
        == "SELECT * FROM t WHERE a = ? AND b = ? AND `c` = ?"
    )


@pytest.mark.parametrize(
    ("sql", "summary", "operation", "collection"),
    [
        (
            "SELECT * FROM wuser_table WHERE username = ?",
            "SELECT wuser_table",
            "SELECT",
            "wuser_table",
        ),
        (
            "INSERT INTO shipping_details (order_id, address) SELECT order_id, address FROM orders",
            "INSERT shipping_details SELECT orders",
            None,
            None,
        ),
        (
            "SELECT * FROM songs, artists WHERE songs.artist_id == artists.id",
            "SELECT songs artists",
            "SELECT",
            None,
        ),
        (
            "SELECT order_date FROM (SELECT * FROM orders o JOIN customers c ON o.id = c.id)",
            "SELECT SELECT orders customers",
            "SELECT",
            None,
        ),
        (
            'SELECT "p"."id" FROM "shop_product" "p" INNER JOIN "shop_category" ON (1 = 1)',
            "SELECT shop_product shop_category",
            "SELECT",
            None,
        ),
        (
            'UPDATE "shop_product" SET "name" = %s WHERE "id" = %s',
            "UPDATE shop_product",
            "UPDATE",
            "shop_product",
        ),
        (
            'DELETE FROM "public"."shop_product" WHERE id = 1',
            "DELETE public.shop_product",
            "DELETE",
            "public.shop_product",
        ),
        ("SELECT * FROM t FOR UPDATE", "SELECT t", "SELECT", "t"),
        (
            "SELECT EXTRACT(YEAR FROM created) FROM shop_order",
            "SELECT shop_order",
            "SELECT",
            "shop_order",
        ),
        ("select id from t where x is distinct from y", "select t", "select", "t"),
        ('SAVEPOINT "s1402_x3"', "SAVEPOINT", "SAVEPOINT", None),
        ("CREATE TABLE IF NOT EXISTS shop_x (id int)", "CREATE shop_x", "CREATE", "shop_x"),
        ("", "SQL", None, None),
        ("   ", "SQL", None, None),
    ],
)
def test_summary_follows_the_semantic_conventions(
    sql: str, summary: str, operation: str | None, collection: str | None
) -> None:
    description = describe_uncached(sql)
    assert (description.summary, description.operation, description.collection) == (
        summary,
        operation,
        collection,
    )


def test_summary_is_capped_at_a_part_boundary_and_names_at_64_characters() -> None:
    tables = [f"table_{n:03d}_" + "x" * 20 for n in range(40)]
    description = describe_uncached("SELECT * FROM " + ", ".join(tables))
    assert len(description.summary) <= SUMMARY_MAX_LENGTH
    assert description.summary.split(" ")[-1] in tables
    long_name = "t" * 300
    assert describe_uncached(f"SELECT * FROM {long_name}").collection == "t" * 64


def test_text_is_capped_and_huge_statements_are_parsed_only_up_to_a_budget() -> None:
    values = ", ".join(f"('{CANARY}{n}', {n})" for n in range(200_000))
    sql = "INSERT INTO t (a, b) VALUES " + values
    description = describe(sql, 64)
    assert len(description.text) <= 64
    assert CANARY not in description.text
    assert description.summary == "INSERT t"
    assert describe(sql, 64) is description  # cached by the parsed prefix


@pytest.mark.parametrize(
    ("sql", "explainable"),
    [
        ("SELECT * FROM t WHERE a = %s", True),
        ("WITH c AS (SELECT 1) SELECT * FROM c", True),
        ("select 1", True),
        ("SELECT 1; DELETE FROM t", False),
        ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", False),
        ("INSERT INTO t SELECT * FROM u", False),
        ("UPDATE t SET a = 1", False),
        ("EXPLAIN ANALYZE SELECT 1", False),
        ("SELECT 1;", True),
    ],
)
def test_only_single_select_statements_are_explainable(sql: str, explainable: bool) -> None:
    assert describe_uncached(sql).explainable is explainable


def test_non_string_sql_is_described_or_marked_unknown() -> None:
    assert describe(b"SELECT 1 FROM t").summary == "SELECT t"
    assert describe(object()).summary == "SQL"
    assert describe(object()).text == ""

    class Composed:  # psycopg.sql.Composed renders itself with its literals
        def as_string(self) -> str:
            return f"SELECT * FROM t WHERE a = '{CANARY}'"

    assert describe(Composed()).text == "SELECT * FROM t WHERE a = ?"


def test_plan_lines_keep_costs_and_lose_values() -> None:
    plan = (
        "Seq Scan on shop_product  (cost=0.00..12.10 rows=1 width=4)\n"
        f"  Filter: ((name)::text = '{CANARY}'::text)\n"
        "  ->  Index Scan using idx on t  (cost=0.15..8.17 rows=1 width=4)\n"
        "        Index Cond: (id = 4111111111111111)"
    )
    assert scrub_plan(plan) == (
        "Seq Scan on shop_product  (cost=0.00..12.10 rows=1 width=4)\n"
        "  Filter: ((name)::text = ?::text)\n"
        "  ->  Index Scan using idx on t  (cost=0.15..8.17 rows=1 width=4)\n"
        "        Index Cond: (id = ?)"
    )
    assert scrub_literals("a = 'x' -- keep\n") == "a = ? -- keep\n"


# -- properties: whatever surrounds it, a literal canary never survives

_secret = st.text(alphabet=string.ascii_letters + string.digits + " @.-_", min_size=6, max_size=24)
_fragment = st.sampled_from(
    [
        "SELECT",
        "*",
        "FROM",
        "shop_product",
        "WHERE",
        "name",
        "=",
        "AND",
        "OR",
        "(",
        ")",
        ",",
        "IN",
        "%s",
        "?",
        "::text",
        "\n",
        "  ",
        "JOIN",
        "t2",
        "VALUES",
        "LIMIT",
        "||",
        "-",
        "$1",
    ]
)


def _literal(secret: str) -> st.SearchStrategy[str]:
    digits = "".join(str(ord(c) % 10) for c in secret)
    return st.sampled_from(
        [
            f"'{secret}'",
            f"'it''s {secret}'",
            f"E'\\'{secret}\\\\'",
            f"$${secret}$$",
            f"$q${secret}$ $q$",
            f"N'{secret}'",
            "X'" + secret.encode().hex() + "'",
            f"1{digits}",
            f"-{digits}.5e3",
            f"/* {secret} */",
            f"-- {secret}\n",
            f"'{secret}",  # unterminated: swallows the rest
            f"IN ('{secret}', '{secret}')",
        ]
    )


@pytest.mark.smoke
@settings(max_examples=300, deadline=None)
@given(data=st.data(), secret=_secret)
@example(data=None, secret="canary secret")
def test_a_literal_secret_never_survives(data: st.DataObject | None, secret: str) -> None:
    if data is None:
        before, literal, after = ["SELECT", "*", "FROM", "t", "WHERE", "a", "="], f"'{secret}'", []
    else:
        before = data.draw(st.lists(_fragment, max_size=12))
        literal = data.draw(_literal(secret))
        after = data.draw(st.lists(_fragment, max_size=12))
    sql = " ".join([*before, literal, *after])
    description = describe_uncached(sql, 4096)
    for part in {secret, secret.encode().hex()} | {"".join(str(ord(c) % 10) for c in secret)}:
        if len(part) >= 6:
            assert part not in description.text, sql
            assert part not in description.summary, sql


@settings(max_examples=300, deadline=None)
@given(sql=st.text(max_size=300), max_length=st.integers(64, 4096))
def test_any_text_is_described_without_error(sql: str, max_length: int) -> None:
    description = describe_uncached(sql, max_length)
    assert len(description.text) <= max_length
    assert 0 < len(description.summary) <= SUMMARY_MAX_LENGTH
