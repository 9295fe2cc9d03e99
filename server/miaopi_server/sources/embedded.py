"""The embedded registry: shared data served from SQLite tables loaded, at start, from the
versioned JSONL fixtures of a data directory (the sample population of `make run`).

    <data dir>/manifest.json   {"format": "miaopi/registry/v1", "version": "...",
                                "tables": {"population": "v1/population.jsonl", ...,
                                           "elicense": "v1/elicense.jsonl"}}

A source table's line is {"record_id": ..., "key": <key fact>, <catalogue field>: value, ...};
an e-license line is {"licence_type", "holder_id", "number", "valid_from", "valid_until"
(null: no expiry), "revoked"}. Every line is checked against the catalogue; a bad one stops the
load with its file and line (RegistryInvalid), never half a registry.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from miaopi_server.clock import utc_now
from miaopi_server.errors import MiaopiError
from miaopi_server.sources.catalogue import CATALOGUE, E_LICENSE_LIBRARY, LICENCE_TYPES
from miaopi_server.sources.model import Licence, Record, SourceUnavailable

FORMAT = "miaopi/registry/v1"
LICENCE_FIELDS = ("licence_type", "holder_id", "number", "valid_from", "valid_until", "revoked")
_SQL_TYPE = {"boolean": "INTEGER", "integer": "INTEGER"}


class RegistryInvalid(MiaopiError):
    """A data directory that does not load; the message names the file and line."""


def stamp(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class EmbeddedRegistry:
    """A provider over the fixtures of one data directory, held in memory."""

    def __init__(self, data_dir: Path, clock: Callable[[], dt.datetime] = utc_now):
        self.data_dir = data_dir
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        try:
            self.version = self._load(data_dir)
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        self._db.close()

    # -- Provider -------------------------------------------------------------------------
    def fetch(self, source: str, key: str, deadline: float) -> Record | None:
        spec = CATALOGUE.get(source)
        if spec is None:
            raise SourceUnavailable(source, "数据目录中没有此数据源")
        names = list(spec.fields)
        cols = ", ".join(f'"{n}"' for n in names)
        with self._lock:
            row = self._db.execute(
                f'SELECT record_id, {cols} FROM "{source}" WHERE key = ?', (key,)
            ).fetchone()
        if row is None:
            return None
        values: dict[str, Any] = {}
        for name, value in zip(names, row[1:], strict=True):
            if value is None:
                continue
            kind = spec.fields[name].kind
            values[name] = bool(value) if kind == "boolean" else value
        return Record(source, row[0], values, stamp(self._clock()))

    def licences(self, holder_id: str, deadline: float) -> tuple[Licence, ...]:
        with self._lock:
            rows = self._db.execute(
                "SELECT licence_type, number, valid_from, valid_until, revoked FROM licences"
                " WHERE holder_id = ? ORDER BY number",
                (holder_id,),
            ).fetchall()
        at = stamp(self._clock())
        return tuple(
            Licence(
                t,
                holder_id,
                n,
                dt.date.fromisoformat(f),
                dt.date.fromisoformat(u) if u else None,
                bool(r),
                at,
            )
            for t, n, f, u, r in rows
        )

    # -- loading --------------------------------------------------------------------------
    def _load(self, data_dir: Path) -> str:
        manifest_path = data_dir / "manifest.json"
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RegistryInvalid(f"{manifest_path}: {exc}") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise RegistryInvalid(f"{manifest_path}: format 应为 {FORMAT}")
        tables = manifest.get("tables")
        if not isinstance(tables, dict):
            raise RegistryInvalid(f"{manifest_path}: tables 应为对象")
        for name, spec in CATALOGUE.items():
            cols = "".join(
                f', "{f}" {_SQL_TYPE.get(s.kind, "TEXT")}' for f, s in spec.fields.items()
            )
            self._db.execute(
                f'CREATE TABLE "{name}" (key TEXT PRIMARY KEY, record_id TEXT NOT NULL{cols})'
            )
        self._db.execute(
            "CREATE TABLE licences (number TEXT PRIMARY KEY, licence_type TEXT NOT NULL,"
            " holder_id TEXT NOT NULL, valid_from TEXT NOT NULL, valid_until TEXT,"
            " revoked INTEGER NOT NULL)"
        )
        self._db.execute("CREATE INDEX licences_holder ON licences (holder_id)")
        for name, rel in tables.items():
            if name != E_LICENSE_LIBRARY and name not in CATALOGUE:
                raise RegistryInvalid(f"{manifest_path}: 数据目录中没有数据源 {name!r}")
            path = data_dir / str(rel)
            for where, row in _lines(path):
                try:
                    if name == E_LICENSE_LIBRARY:
                        self._insert_licence(row)
                    else:
                        self._insert_record(name, row)
                except (ValueError, TypeError, sqlite3.IntegrityError) as exc:
                    raise RegistryInvalid(f"{where}: {exc}") from None
        self._db.commit()
        return str(manifest.get("version", ""))

    def _insert_record(self, source: str, row: dict[str, Any]) -> None:
        spec = CATALOGUE[source]
        key, record_id = row.pop("key", None), row.pop("record_id", None)
        if not isinstance(key, str) or not key or not isinstance(record_id, str) or not record_id:
            raise ValueError("key 与 record_id 应为非空字符串")
        for name, value in row.items():
            field = spec.fields.get(name)
            if field is None:
                raise ValueError(f"数据源 {source} 没有字段 {name!r}")
            check_value(field.kind, value)
        names = list(row)
        cols = "".join(f', "{n}"' for n in names)
        marks = ", ?" * len(names)
        self._db.execute(
            f'INSERT INTO "{source}" (key, record_id{cols}) VALUES (?, ?{marks})',
            (key, record_id, *row.values()),
        )

    def _insert_licence(self, row: dict[str, Any]) -> None:
        if set(row) != set(LICENCE_FIELDS):
            raise ValueError(f"电子证照记录应有且仅有字段 {', '.join(LICENCE_FIELDS)}")
        if row["licence_type"] not in LICENCE_TYPES:
            raise ValueError(f"未知的证照类型 {row['licence_type']!r}")
        for name in ("holder_id", "number"):
            if not isinstance(row[name], str) or not row[name]:
                raise ValueError(f"{name} 应为非空字符串")
        check_value("date", row["valid_from"])
        if row["valid_until"] is not None:
            check_value("date", row["valid_until"])
        check_value("boolean", row["revoked"])
        self._db.execute(
            "INSERT INTO licences VALUES (?, ?, ?, ?, ?, ?)",
            (
                row["number"],
                row["licence_type"],
                row["holder_id"],
                row["valid_from"],
                row["valid_until"],
                row["revoked"],
            ),
        )


def check_value(kind: str, value: Any) -> None:
    """Raise ValueError unless `value` is a JSON value of the catalogue kind."""
    ok = {
        "boolean": isinstance(value, bool),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "string": isinstance(value, str),
        "region_code": isinstance(value, str) and len(value) == 6 and value.isdigit(),
        "date": isinstance(value, str) and _is_date(value),
    }.get(kind, False)
    if not ok:
        raise ValueError(f"值 {value!r} 不是 {kind}")


def _is_date(text: str) -> bool:
    try:
        return dt.date.fromisoformat(text).isoformat() == text
    except ValueError:
        return False


def _lines(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RegistryInvalid(f"{path}: {exc.strerror}") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise RegistryInvalid(f"{where}: {exc}") from None
        if not isinstance(row, dict):
            raise RegistryInvalid(f"{where}: 应为 JSON 对象")
        yield where, row
