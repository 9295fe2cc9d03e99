"""The audit database's schema, as numbered migrations: `NNNN_name.sql` files in this package.

A database records every migration applied to it in a `schema_version` table (version, name,
applied_at), so its version is the highest one there. `pending` decides, from those rows and
the migrations this code ships, what is left to apply, or refuses a database this code cannot
serve. None of this depends on SQLite; sqlite_migrate.py applies them to a SQLite database.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from miaopi_server.errors import AuditSchemaTooNew, AuditUnavailable

_FILE_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")

VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str  # the file name without ".sql", e.g. "0001_records"
    sql: str


def load(source: Traversable | Path | None = None) -> tuple[Migration, ...]:
    """The migrations in `source` (default: this package), in order. Other files are ignored;
    a `.sql` file not named NNNN_name.sql, or numbers that skip or repeat, are refused."""
    folder = source if source is not None else resources.files(__name__)
    found = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.fullmatch(entry.name)
        if match is None:
            raise ValueError(f"migration file {entry.name!r} is not named NNNN_name.sql")
        sql = entry.read_text(encoding="utf-8")
        found.append(Migration(int(match[1]), entry.name.removesuffix(".sql"), sql))
    found.sort(key=lambda m: m.version)
    check_numbering(found)
    return tuple(found)


@cache
def shipped() -> tuple[Migration, ...]:
    """The migrations this code ships (read once per process)."""
    return load()


def check_numbering(migrations: Sequence[Migration]) -> None:
    """Migrations must be numbered 1, 2, 3, ... in order, without gaps or repeats."""
    for expected, m in enumerate(migrations, start=1):
        if m.version != expected:
            raise ValueError(f"migration {m.name!r} is number {m.version}, expected {expected}")


def pending(
    applied: Sequence[tuple[int, str]], known: Sequence[Migration], database: str
) -> list[Migration]:
    """What is left to apply to a database that has `applied` (version, name), oldest first.

    A version this code does not know, or a known number applied under another name (a
    database from a diverging build), is refused: writing to it could break its next reader.
    """
    newest = known[-1].version if known else 0
    current = applied[-1][0] if applied else 0
    if current > newest:
        raise AuditSchemaTooNew(database, current, newest)
    if [v for v, _ in applied] != list(range(1, current + 1)):
        raise AuditUnavailable(
            f"audit database {database}: schema_version lists {[v for v, _ in applied]}, "
            "not every version from 1 up; it was not written by miaopi-server"
        )
    for (version, name), m in zip(applied, known, strict=False):
        if name != m.name:
            raise AuditUnavailable(
                f"audit database {database}: version {version} was applied as {name!r}, "
                f"but this server's migration {version} is {m.name!r}"
            )
    return list(known[current:])
