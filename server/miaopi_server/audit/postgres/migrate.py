"""The PostgreSQL audit database's schema: numbered migrations (the SQL files beside this
module, a series of its own), applied by `miaopi-server migrate --store DSN` and checked when
a node starts: a node never migrates by itself (many nodes share the database, and a schema
change is an operator's act), and refuses a database that is behind or ahead of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from functools import cache
from importlib import resources

from miaopi_server.audit.migrations import (
    VERSION_TABLE,
    Migration,
    check_numbering,
    load,
    pending,
)
from miaopi_server.audit.postgres.conn import DOWN, PgConn
from miaopi_server.audit.record import fixed_time
from miaopi_server.clock import utc_now
from miaopi_server.errors import AuditUnavailable

# pg_advisory_xact_lock keys: one for migrations, one for the writers of the trail, one for
# the alert scheduler's election (arbitrary constants, the same on every node).
MIGRATE_LOCK = 0x6D69616F_7069_01
WRITE_LOCK = 0x6D69616F_7069_02
ALERTS_LOCK = 0x6D69616F_7069_03


@cache
def shipped() -> tuple[Migration, ...]:
    return load(resources.files(__package__) / "migrations")


def applied(conn: PgConn) -> list[tuple[int, str]] | None:
    """(version, name) of every migration the database has; None before the first."""
    found = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    if not found[0]:
        return None
    rows = conn.execute("SELECT version, name FROM schema_version ORDER BY version")
    return [(int(v), str(n)) for v, n in rows]


def migrate(conn: PgConn, where: str, known: Sequence[Migration] | None = None) -> list[str]:
    """Apply what the database lacks, each migration in its own transaction under an advisory
    lock (two operators migrating at once apply each once); the names applied now."""
    known = shipped() if known is None else known
    check_numbering(known)
    done: list[str] = []
    while True:
        try:
            conn.execute("BEGIN")
            conn.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATE_LOCK,))
            conn.execute(VERSION_TABLE)
            todo = pending(applied(conn) or [], known, where)
            if todo:
                conn.execute(todo[0].sql)  # several statements, no parameters: one call
                conn.execute(
                    "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                    (todo[0].version, todo[0].name, fixed_time(utc_now())),
                )
            conn.execute("COMMIT")
        except DOWN as exc:
            raise AuditUnavailable(
                f"audit database {where}: migration failed, nothing of it applied: {exc}"
            ) from None
        finally:
            if conn.raw.info.transaction_status != 0:  # not idle: undo the half-done one
                with suppress(*DOWN):
                    conn.raw.rollback()
        if not todo:
            return done
        done.append(todo[0].name)


def check_schema(conn: PgConn, where: str, known: Sequence[Migration] | None = None) -> int:
    """The database's version when it is exactly what this server knows; otherwise refuse:
    AuditSchemaTooNew (a newer server migrated it) or AuditUnavailable (not migrated)."""
    known = shipped() if known is None else known
    have = applied(conn)
    todo = pending(have or [], known, where)
    if have is None or todo:
        at = have[-1][0] if have else 0
        raise AuditUnavailable(
            f"audit database {where} is at schema version {at}, this server needs "
            f"{known[-1].version}: run `miaopi-server migrate --store DSN` first"
        )
    return have[-1][0] if have else 0
