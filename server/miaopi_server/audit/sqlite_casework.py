"""Casework in the audit database (SQLite or PostgreSQL, the same SQL: audit/dialect.py):
tasks opened in their decision's commit, moved by transitions applied and recorded in the
writer's transaction, and read for the queue."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Iterable
from typing import Any

from miaopi_server.audit.canonical import sha256_hex
from miaopi_server.audit.dialect import Connection, dialect_of, insert_rows
from miaopi_server.audit.record import StoredRecord, chained_record, column_time, fixed_time
from miaopi_server.audit.sqlite_escalation import record_escalation
from miaopi_server.audit.transition import (
    KIND,
    PendingTransition,
    comment_digest,
    transition_body,
)
from miaopi_server.casework.codec import task_from_json, task_to_json
from miaopi_server.casework.kpi import CaseFacts
from miaopi_server.casework.model import Task, act
from miaopi_server.casework.rating import RATE, AlreadyRated, check_rating
from miaopi_server.casework.states import (
    CLOSED,
    ESCALATE,
    FINAL,
    INSTANT,
    SUPPLEMENT_PENDING,
    IllegalTransition,
)
from miaopi_server.errors import DecisionNotFound

TASK_COLUMNS = (
    "decision_id, kind, state, item_code, department, jurisdiction, window_id, opened_at,"
    " assignee, last_seq, task"
)


def task_row(seq: int, task: Task, task_json: str = "") -> tuple[object, ...]:
    return (
        task.decision_id, task.kind, task.state, task.item_code, task.department,
        task.jurisdiction, task.window_id, fixed_time(task.opened_at),
        task.assignee, seq, task_json or task_to_json(task),
    )  # fmt: skip


def insert_tasks(conn: Connection, rows: Iterable[tuple[object, ...]]) -> None:
    insert_rows(conn, f"INSERT INTO tasks ({TASK_COLUMNS})", 11, list(rows))


def apply_transition(
    conn: Connection, seq: int, prev: str, pending: PendingTransition, key_id: str
) -> StoredRecord:
    """Move the task and insert the transition's record at `seq`, inside the caller's write
    transaction. Raises DecisionNotFound (no task), IllegalTransition or CaseInvalid, having
    changed nothing."""
    row = conn.execute(
        "SELECT task FROM tasks WHERE decision_id = ?", (pending.decision_id,)
    ).fetchone()
    rating = pending.action.action == RATE
    if row is None:
        decided = conn.execute(
            "SELECT item_code, decided_at FROM records WHERE decision_id = ? AND kind = 'decision'",
            (pending.decision_id,),
        ).fetchone()
        if decided is None:
            raise DecisionNotFound(pending.decision_id[:64])
        if not rating:
            raise IllegalTransition(INSTANT, CLOSED, pending.action.action, "规则已即时办结")
        before = _closed_at_once(pending.decision_id, decided[0], decided[1])
    else:
        before = task_from_json(row[0])
    if rating:
        details = check_rating(before, pending.action)
        # ON CONFLICT, not a caught IntegrityError: on PostgreSQL an error aborts the whole
        # transaction, and the rest of the writer's batch with it.
        taken = conn.execute(
            "INSERT INTO ratings (decision_id, score, rated_at, seq) VALUES (?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (before.decision_id, pending.action.score, pending.at, seq),
        ).rowcount
        if taken != 1:
            raise AlreadyRated(before)
        comment = details.pop("comment", "")
        if comment:  # personal data: beside the record, erasable by a purge (migration 0009)
            salt = secrets.token_hex(16)
            conn.execute(
                "INSERT INTO rating_comments (decision_id, seq, salt, comment) VALUES (?,?,?,?)",
                (before.decision_id, seq, salt, comment),
            )
            details["comment_digest"] = comment_digest(salt, comment)
        after = before
    else:
        idle = dt.timedelta(seconds=pending.claim_idle_seconds)
        after, details = act(before, pending.action, idle)
    fields = {
        **details,
        "id": pending.transition_id,
        "decision_id": before.decision_id,
        "item_code": before.item_code,
        "kind": before.kind,
        "action": pending.action.action,
        "from": before.state,
        "to": after.state,
        "by": pending.action.by,
        "at": pending.at,
    }
    body = transition_body(seq, prev, pending.node_id, fields)
    h = sha256_hex(body)
    conn.execute(
        "INSERT INTO records (seq, decision_id, request_id, item_code, outcome, window_id,"
        " decided_at, case_digest, body, hash, key_id, signature, kind)"
        " VALUES (?, ?, NULL, ?, '', '', ?, '', ?, ?, ?, ?, ?)",
        (seq, pending.transition_id, before.item_code, column_time(pending.at), body.decode(), h,
         key_id, b"", KIND),
    )  # fmt: skip
    if after is not before:
        conn.execute(
            "UPDATE tasks SET state = ?, assignee = ?, last_seq = ?, task = ?"
            " WHERE decision_id = ?",
            (after.state, after.assignee, seq, task_to_json(after), after.decision_id),
        )
    if pending.action.action == ESCALATE:
        record_escalation(
            conn, after, details, pending.transition_id, pending.action.at, pending.at
        )
    return chained_record(
        seq, pending.transition_id, prev, pending.node_id, body.decode(), h, key_id
    )


def _closed_at_once(decision_id: str, item_code: str, decided_at: str) -> Task:
    """What the store knows of a case the rules closed at once (it has no task row)."""
    return Task(
        decision_id=decision_id, kind=INSTANT, state=CLOSED, item_code=item_code,
        department="", jurisdiction="", window_id="",
        opened_at=dt.datetime.fromisoformat(decided_at), promised_days=0, statutory_days=0,
        supplement_days=0, rules_outcome="", rules_verdict="",
    )  # fmt: skip


def get_task(conn: Connection, decision_id: str) -> tuple[Task, int] | None:
    """The task a decision opened and the seq of its last record."""
    row = conn.execute(
        "SELECT task, last_seq FROM tasks WHERE decision_id = ?", (decision_id,)
    ).fetchone()
    return (task_from_json(row[0]), row[1]) if row else None


def list_tasks(
    conn: Connection,
    departments: Iterable[str],
    jurisdiction: str,
    states: Iterable[str],
    limit: int,
    after: tuple[str, str] = ("", ""),
    escalated_only: bool = False,
    item_code: str = "",
) -> list[Task]:
    """Tasks of these departments (all when none are given) in these states (all when none),
    of this item (every item when ""),
    whose jurisdiction lies within `jurisdiction` (a region code prefix; "" is everywhere),
    in the stable order (opened_at, decision_id), after `after` (the last of the previous
    page: its opened_at column value and decision id) when given."""
    where: list[str] = ["kind != 'instant'"]
    args: list[object] = []
    deps, sts = list(departments), list(states)
    if deps:
        where.append(f"department IN ({','.join('?' * len(deps))})")
        args += deps
    if sts:
        where.append(f"state IN ({','.join('?' * len(sts))})")
        args += sts
    if jurisdiction:
        where.append("substr(jurisdiction, 1, ?) = ?")
        args += [len(jurisdiction), jurisdiction]
    if after[0]:
        where.append("(opened_at > ? OR (opened_at = ? AND decision_id > ?))")
        args += [after[0], after[0], after[1]]
    if escalated_only:
        where.append(f"{dialect_of(conn).json_int('task', 'escalations')} > 0")
    if item_code:
        where.append("item_code = ?")
        args.append(item_code)
    sql = (
        f"SELECT task FROM tasks WHERE {' AND '.join(where)}"
        " ORDER BY opened_at, decision_id LIMIT ?"
    )
    return [task_from_json(r[0]) for r in conn.execute(sql, (*args, limit))]


def tasks_not_final(conn: Connection) -> list[Task]:
    """Every task not in a final state (the metrics' open and overdue tasks)."""
    final = sorted(FINAL)
    sql = f"SELECT task FROM tasks WHERE state NOT IN ({','.join('?' * len(final))})"
    return [task_from_json(r[0]) for r in conn.execute(sql, final)]


def pending_supplements(conn: Connection) -> list[Task]:
    """Supplement tasks still waiting for their deferred materials (the scheduler lapses
    those whose due day has passed)."""
    return [
        task_from_json(r[0])
        for r in conn.execute(
            "SELECT task FROM tasks WHERE kind = 'supplement' AND state = ?",
            (SUPPLEMENT_PENDING,),
        )
    ]


def period_facts(
    conn: Connection, start: str, end: str, instant: Iterable[Task]
) -> list[CaseFacts]:
    """The cases opened in [start, end) (`opened_at` column values): those with a task, and
    `instant` (the cases closed at once, built by the caller from their decision records),
    each with its first claim, its closing time and its rating."""
    tasks = [
        task_from_json(r[0])
        for r in conn.execute(
            "SELECT task FROM tasks WHERE opened_at >= ? AND opened_at < ?", (start, end)
        )
    ]
    claimed: dict[str, dt.datetime] = {}
    closed: dict[str, dt.datetime] = {}
    field = dialect_of(conn).json_text
    for decision_id, action, to, at in conn.execute(
        f"SELECT {field('body', 'transition', 'decision_id')},"
        f" {field('body', 'transition', 'action')}, {field('body', 'transition', 'to')},"
        " decided_at FROM records WHERE kind = 'transition' AND decided_at >= ? ORDER BY seq",
        (start,),
    ):
        when = dt.datetime.fromisoformat(at)
        if action == "claim":
            claimed.setdefault(decision_id, when)
        if to in FINAL and action != RATE:
            closed.setdefault(decision_id, when)
    scores = dict(
        conn.execute("SELECT decision_id, score FROM ratings WHERE rated_at >= ?", (start,))
    )
    return [
        CaseFacts(
            t, claimed.get(t.decision_id), closed.get(t.decision_id), scores.get(t.decision_id, 0)
        )
        for t in (*tasks, *instant)
    ]


def task_history(conn: Connection, decision_id: str, after_seq: int) -> list[dict[str, Any]]:
    """The transitions of a decision's task, oldest first, each with its record's seq: what
    the transition records say (action, from, to, by, at, what it carried). Transitions
    follow their decision, so the scan starts at the decision's seq."""
    field = dialect_of(conn).json_text
    rows = conn.execute(
        f"SELECT seq, {field('body', 'transition')} FROM records WHERE kind = 'transition'"
        f" AND seq > ? AND {field('body', 'transition', 'decision_id')} = ? ORDER BY seq",
        (after_seq, decision_id),
    )
    return [{**json.loads(body), "seq": seq} for seq, body in rows]
