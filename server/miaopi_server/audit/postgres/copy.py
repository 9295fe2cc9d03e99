"""Moving a node's SQLite trail into an empty PostgreSQL trail, byte for byte.

Every table of the SQLite database (but its schema bookkeeping) is copied row by row into the
table of the same name and columns: records, cases, tree nodes and signed heads unchanged, so
every receipt the node gave keeps verifying against the new store. A table the PostgreSQL
schema lacks, or whose columns differ, stops the copy before anything is written: add the
table to both backends' migrations first (docs/AUDIT.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from miaopi_server.audit.dialect import POSTGRES, SQLITE
from miaopi_server.audit.postgres.conn import DOWN, PgConn, where
from miaopi_server.audit.postgres.migrate import WRITE_LOCK
from miaopi_server.audit.sqlite_verify import connect_readonly
from miaopi_server.errors import AuditUnavailable

_NOT_COPIED = {"schema_version", "sqlite_sequence"}
_CHUNK = 1000


def copy_trail(sqlite_path: Path, dsn: str) -> dict[str, int]:
    """Copy the SQLite trail at `sqlite_path` into the empty trail `dsn` names, in one
    transaction under the writers' lock; the rows copied per table."""
    src = connect_readonly(sqlite_path)
    try:
        with psycopg.connect(dsn, autocommit=True) as raw:
            return _copy(src, PgConn(raw), where(dsn))
    except DOWN as exc:
        raise AuditUnavailable(f"audit database {where(dsn)}: copy failed: {exc}") from None
    finally:
        src.close()


def _copy(src: Any, dst: PgConn, name: str) -> dict[str, int]:
    tables = sorted(SQLITE.tables(src) - _NOT_COPIED)
    columns = {t: SQLITE.columns(src, t) for t in tables}
    have = POSTGRES.tables(dst)
    problems = [
        f"{t} ({'missing' if t not in have else 'other columns'})"
        for t in tables
        if t not in have or sorted(POSTGRES.columns(dst, t)) != sorted(columns[t])
    ]
    if problems:
        raise AuditUnavailable(
            f"audit database {name} does not match the SQLite trail's tables: "
            f"{', '.join(problems)}; migrate it with a server that knows them"
        )
    counts: dict[str, int] = {}
    dst.execute("BEGIN")
    try:
        dst.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK,))
        (taken,) = dst.execute("SELECT EXISTS (SELECT 1 FROM records)").fetchone()
        if taken:
            raise AuditUnavailable(
                f"audit database {name} already holds records: a trail is copied only into "
                "an empty one"
            )
        for t in _referenced_first(dst, tables):
            cols = ", ".join(columns[t])
            marks = ", ".join("?" * len(columns[t]))
            rows = src.execute(f"SELECT {cols} FROM {t}")
            counts[t] = 0
            while chunk := rows.fetchmany(_CHUNK):
                dst.executemany(f"INSERT INTO {t} ({cols}) VALUES ({marks})", chunk)
                counts[t] += len(chunk)
        # Identity columns (alerts.seq) go on from the copied values.
        for t, col in dst.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE is_identity = 'YES' AND table_schema = current_schema()"
        ).fetchall():
            if t in counts:
                dst.execute(
                    f"SELECT setval(pg_get_serial_sequence('{t}', '{col}'),"
                    f" COALESCE((SELECT MAX({col}) FROM {t}), 0) + 1, false)"
                )
        dst.execute("COMMIT")
    except BaseException:
        if dst.raw.info.transaction_status != 0:
            dst.raw.rollback()
        raise
    return counts


def _referenced_first(conn: PgConn, tables: list[str]) -> list[str]:
    """`tables` with every table after those its foreign keys reference (published_items after
    published_rulesets), otherwise by name."""
    refs: dict[str, set[str]] = {t: set() for t in tables}
    for child, parent in conn.execute(
        "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint"
        " WHERE contype = 'f' AND connamespace = current_schema()::regnamespace"
    ).fetchall():
        if child in refs and parent in refs and child != parent:
            refs[child].add(parent)
    ordered: list[str] = []
    while refs:
        ready = sorted(t for t, parents in refs.items() if not parents - set(ordered))
        ready = ready or sorted(refs)  # a cycle: the database's own check will say so
        ordered += ready
        for t in ready:
            del refs[t]
    return ordered
