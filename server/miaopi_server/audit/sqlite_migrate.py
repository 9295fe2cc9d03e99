"""Bringing a SQLite audit database to the schema this code knows, at store start.

Each migration runs in a transaction of its own (BEGIN IMMEDIATE: the write lock is taken
before the version is read), so several processes starting on one database at once apply each
migration exactly once, and a migration that fails leaves the database at the version before
it. A database made before schema versions (a `records` table, no `schema_version`) is the
one 0001_records.sql creates: it is recorded as version 1, and 0001 is not run on it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import suppress

from miaopi_server.audit.migrations import VERSION_TABLE, Migration, check_numbering, pending
from miaopi_server.audit.record import fixed_time
from miaopi_server.clock import utc_now
from miaopi_server.errors import AuditUnavailable


def migrate(conn: sqlite3.Connection, known: Sequence[Migration], database: str) -> int:
    """Apply what `known` has beyond the database's version; return the version reached.

    `conn` is in autocommit mode (isolation_level=None) and `database` names the database in
    errors. Raises AuditSchemaTooNew for a database newer than `known`, AuditUnavailable
    when a migration fails."""
    check_numbering(known)
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            applied = _applied(conn, known)
            todo = pending(applied, known, database)
            if todo:
                _apply(conn, todo[0], database)
            conn.execute("COMMIT")
        except BaseException:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        if not todo:
            return applied[-1][0] if applied else 0


def _applied(conn: sqlite3.Connection, known: Sequence[Migration]) -> list[tuple[int, str]]:
    """(version, name) of every migration the database has, oldest first; read inside the
    write transaction, so it is what the database holds now, whoever migrated it."""
    tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "schema_version" not in tables:
        conn.execute(VERSION_TABLE)
        if "records" in tables and known:  # made before schema versions: what 0001 creates
            _record(conn, known[0])
    rows = conn.execute("SELECT version, name FROM schema_version ORDER BY version")
    return [(int(v), str(n)) for v, n in rows]


def _apply(conn: sqlite3.Connection, m: Migration, database: str) -> None:
    try:
        for statement in statements(m.sql):
            conn.execute(statement)
        _record(conn, m)
    except sqlite3.Error as exc:
        raise AuditUnavailable(
            f"audit database {database}: migration {m.name} failed, so it stays at version "
            f"{m.version - 1}: {exc}"
        ) from exc


def _record(conn: sqlite3.Connection, m: Migration) -> None:
    conn.execute(
        "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
        (m.version, m.name, fixed_time(utc_now())),
    )


def statements(sql: str) -> list[str]:
    """A migration script's statements, one by one: sqlite3 runs one statement per execute,
    and executescript would commit the open transaction first."""
    out, current = [], ""
    *ended, tail = sql.split(";")
    for piece in ended:
        current += piece + ";"
        if sqlite3.complete_statement(current):  # not a ";" inside a string, comment, trigger
            out.append(current.strip())
            current = ""
    rest = (current + tail).strip()
    if rest:  # comments after the last statement run as a no-op; anything else fails there
        out.append(rest)
    return out
