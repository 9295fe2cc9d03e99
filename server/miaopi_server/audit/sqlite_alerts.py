"""Alerts in the audit database (SQLite or PostgreSQL, the same SQL: audit/dialect.py): raised
from the stored tasks (ON CONFLICT DO NOTHING on the (task, kind) key, so every process may
scan and each alert is stored once) and read in seq order for the stream."""

from __future__ import annotations

import datetime as dt
import json

from miaopi_server.audit.dialect import Connection, dialect_of
from miaopi_server.audit.record import fixed_time
from miaopi_server.casework.alerts import Alert, alert_for
from miaopi_server.casework.codec import task_from_json
from miaopi_server.casework.states import FINAL
from miaopi_server.clock import SHANGHAI

_COLUMNS = (
    "decision_id, kind, item_code, department, jurisdiction, due_on, seq, raised_at, recipients,"
    " note"
)
_OPEN = ",".join(f"'{state}'" for state in sorted(FINAL))


def raise_alerts(conn: Connection, now: dt.datetime, due_soon_fraction: float) -> list[Alert]:
    """Store the alerts the tasks call for as of `now`; the ones new to the table, in order."""
    today = now.astimezone(SHANGHAI).date()
    dialect = dialect_of(conn)
    rows = conn.execute(
        f"SELECT task FROM tasks WHERE state NOT IN ({_OPEN})"
        f" OR (state = 'decided' AND {dialect.json_true('task', 'overridden')})"
    ).fetchall()
    due = [
        a for a in (alert_for(task_from_json(r[0]), today, due_soon_fraction) for r in rows) if a
    ]
    if not due:
        return []
    raised_at = fixed_time(now)
    new: list[Alert] = []
    conn.execute(dialect.begin_write)  # the connection is in autocommit mode: one transaction
    try:
        for a in due:
            row = conn.execute(
                "INSERT INTO alerts (decision_id, kind, item_code, department,"
                " jurisdiction, due_on, raised_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING RETURNING seq",
                (a.decision_id, a.kind, a.item_code, a.department, a.jurisdiction, a.due_on,
                 raised_at),
            ).fetchone()  # fmt: skip
            if row is not None:
                new.append(Alert(*_fields(a), seq=int(row[0]), raised_at=raised_at))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return new


def _fields(a: Alert) -> tuple[str, str, str, str, str, str]:
    return a.decision_id, a.kind, a.item_code, a.department, a.jurisdiction, a.due_on


def alerts_after(conn: Connection, after_seq: int, jurisdiction: str, limit: int) -> list[Alert]:
    """Alerts with seq > after_seq whose jurisdiction lies within `jurisdiction`, oldest first."""
    return [
        Alert(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], tuple(json.loads(r[8])), r[9])
        for r in conn.execute(
            f"SELECT {_COLUMNS} FROM alerts WHERE seq > ? AND substr(jurisdiction, 1, ?) = ?"
            " ORDER BY seq LIMIT ?",
            (after_seq, len(jurisdiction), jurisdiction, limit),
        )
    ]


def latest_alerts_cursor(conn: Connection, jurisdiction: str, count: int) -> int:
    """The cursor after which lie the latest `count` alerts within `jurisdiction` (0 when
    there are no more than that), so a reader of the latest ones starts there instead of
    reading the whole history. Scans from the newest seq back, `count` + 1 matches deep."""
    row = conn.execute(
        "SELECT seq FROM alerts WHERE substr(jurisdiction, 1, ?) = ?"
        " ORDER BY seq DESC LIMIT 1 OFFSET ?",
        (len(jurisdiction), jurisdiction, count),
    ).fetchone()
    return int(row[0]) if row else 0
