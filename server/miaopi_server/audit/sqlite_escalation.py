"""An escalation (督办) in the audit database (either backend: audit/dialect.py): its alert and
its webhook notification, inserted in the write transaction of the escalation's transition
record, so the three are durable together or not at all."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from typing import Any

from miaopi_server.audit.dialect import Connection
from miaopi_server.audit.sqlite_outbox import enqueue
from miaopi_server.casework.escalation import escalation_alert, notification
from miaopi_server.casework.model import Task
from miaopi_server.clock import SHANGHAI


def record_escalation(
    conn: Connection,
    task: Task,
    details: dict[str, Any],
    transition_id: str,
    at: dt.datetime,
    at_text: str,
) -> int:
    """Insert the `escalated` alert of `task` (as escalated) and its outbox row; the alert's
    seq. `ref` = the transition id: every escalation of a task is an alert of its own."""
    today = at.astimezone(SHANGHAI).date()
    alert = escalation_alert(task, details["note"], details["notify"], today)
    (seq,) = conn.execute(
        "INSERT INTO alerts (decision_id, kind, item_code, department, jurisdiction, due_on,"
        " raised_at, ref, recipients, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
        (alert.decision_id, alert.kind, alert.item_code, alert.department, alert.jurisdiction,
         alert.due_on, at_text, transition_id,
         json.dumps(list(alert.recipients), ensure_ascii=False), alert.note),
    ).fetchone()  # fmt: skip
    body = notification(replace(alert, seq=seq, raised_at=at_text), task, transition_id, today)
    enqueue(conn, seq, json.dumps(body, ensure_ascii=False, sort_keys=True), at_text)
    return int(seq)


def alert_seq_of(conn: Connection, transition_id: str) -> int:
    """The seq of the alert an escalation raised (0: none)."""
    row = conn.execute("SELECT seq FROM alerts WHERE ref = ?", (transition_id,)).fetchone()
    return int(row[0]) if row else 0
