"""The webhook's durable outbox in the audit database (SQLite migration 0009, PostgreSQL 0003;
the same SQL: audit/dialect.py).

A notification is enqueued in the transaction of the alert it carries. Delivery is at least
once: a process takes due rows by setting their lease in a write transaction, sends them
outside it, then marks each delivered or failed (the next attempt after a backoff). A lease
that ran out (its holder died mid-send) lets another process take the row again: the receiver
deduplicates by alert seq. Of several takers one gets each row: on SQLite the transaction
(BEGIN IMMEDIATE) runs alone among `--workers`; on PostgreSQL, where nodes take at the same
time, the rows are chosen FOR UPDATE SKIP LOCKED and the UPDATE checks again that each is due
and unleased (a row another node leased meanwhile is left out).
"""

from __future__ import annotations

from dataclasses import dataclass

from miaopi_server.audit.dialect import Connection, dialect_of


@dataclass(frozen=True)
class Delivery:
    id: int
    alert_seq: int
    body: str
    attempts: int  # counting the one this lease is for


def enqueue(conn: Connection, alert_seq: int, body: str, now: str) -> None:
    """Inside the caller's transaction; due at once."""
    conn.execute(
        "INSERT INTO webhook_outbox (alert_seq, body, created_at, next_at) VALUES (?, ?, ?, ?)",
        (alert_seq, body, now, now),
    )


_DUE = "delivered_at = '' AND next_at <= ? AND (lease_until = '' OR lease_until <= ?)"


def take_due(
    conn: Connection, owner: str, now: str, lease_until: str, limit: int
) -> list[Delivery]:
    """Lease up to `limit` due rows to `owner` (times are fixed-width UTC text). `conn` is in
    autocommit mode; a cheap read first, so an idle outbox never takes the write lock."""
    if conn.execute(f"SELECT 1 FROM webhook_outbox WHERE {_DUE} LIMIT 1", (now, now)).fetchone():
        dialect = dialect_of(conn)
        conn.execute(dialect.begin_write)
        try:
            rows = conn.execute(
                "UPDATE webhook_outbox SET lease_owner = ?, lease_until = ?,"
                f" attempts = attempts + 1 WHERE {_DUE} AND id IN (SELECT id FROM webhook_outbox"
                f" WHERE {_DUE} ORDER BY id LIMIT ?{dialect.skip_locked})"
                " RETURNING id, alert_seq, body, attempts",
                (owner, lease_until, now, now, now, now, limit),
            ).fetchall()
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return sorted((Delivery(r[0], r[1], r[2], r[3]) for r in rows), key=lambda d: d.id)
    return []


def mark_delivered(conn: Connection, delivery_id: int, owner: str, now: str) -> bool:
    """False when the lease was lost meanwhile (another process took the row again)."""
    cur = conn.execute(
        "UPDATE webhook_outbox SET delivered_at = ?, lease_owner = '', lease_until = '',"
        " last_error = '' WHERE id = ? AND lease_owner = ?",
        (now, delivery_id, owner),
    )
    return cur.rowcount == 1


def mark_failed(conn: Connection, delivery_id: int, owner: str, next_at: str, error: str) -> bool:
    cur = conn.execute(
        "UPDATE webhook_outbox SET next_at = ?, lease_owner = '', lease_until = '',"
        " last_error = ? WHERE id = ? AND lease_owner = ? AND delivered_at = ''",
        (next_at, error[:500], delivery_id, owner),
    )
    return cur.rowcount == 1


def undelivered(conn: Connection) -> int:
    (n,) = conn.execute("SELECT COUNT(*) FROM webhook_outbox WHERE delivered_at = ''").fetchone()
    return int(n)
