"""audit/dialect.insert_rows: every row once, in order, whatever the count (one statement per
MAX_ROWS_PER_STATEMENT rows)."""

from __future__ import annotations

import sqlite3

from miaopi_server.audit.dialect import MAX_ROWS_PER_STATEMENT, insert_rows


def test_every_row_once_in_order_at_every_count() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (n INTEGER, label TEXT, blob BLOB)")
    most = MAX_ROWS_PER_STATEMENT
    counts = [*range(0, most + 3), 2 * most - 1, 2 * most, 2 * most + 1, 5 * most + 7]
    for count in counts:
        conn.execute("DELETE FROM t")
        rows = [(i, f"第{i}行", bytes([i % 256])) for i in range(count)]
        insert_rows(conn, "INSERT INTO t (n, label, blob)", 3, rows)
        assert conn.execute("SELECT n, label, blob FROM t ORDER BY rowid").fetchall() == rows


def test_statements_per_call_are_few() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (n INTEGER)")
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    n = 3 * MAX_ROWS_PER_STATEMENT + 5
    insert_rows(conn, "INSERT INTO t (n)", 1, [(i,) for i in range(n)])
    # one statement per MAX_ROWS_PER_STATEMENT rows (and one for the rest), not one per row
    assert len([s for s in statements if s.startswith("INSERT")]) == 4
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (n,)
