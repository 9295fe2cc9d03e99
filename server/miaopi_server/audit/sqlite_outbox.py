"""The webhook's durable outbox in the SQLite audit database (migration 0009).

A notification is enqueued in the transaction of the alert it carries. Delivery is at least
once: a process takes due rows by setting their lease in a write transaction (BEGIN IMMEDIATE,
so of several `--workers` one takes each row), sends them outside it, then marks each
delivered or failed (the next attempt after a backoff). A lease that ran out (its holder died
mid-send) lets another process take the row again: the receiver deduplicates by alert seq.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class Delivery:
    id: int
    alert_seq: int
    body: str
    attempts: int  # counting the one this lease is for


def enqueue(conn: sqlite3.Connection, alert_seq: int, body: str, now: str) -> None:
    """Inside the caller's transaction; due at once."""
    conn.execute(
        "INSERT INTO webhook_outbox (alert_seq, body, created_at, next_at) VALUES (?, ?, ?, ?)",
        (alert_seq, body, now, now),
    )


_DUE = "delivered_at = '' AND next_at <= ? AND (lease_until = '' OR lease_until <= ?)"


def take_due(
    conn: sqlite3.Connection, owner: str, now: str, lease_until: str, limit: int
) -> list[Delivery]:
    """Lease up to `limit` due rows to `owner` (times are fixed-width UTC text). `conn` is in
    autocommit mode; a cheap read first, so an idle outbox never takes the write lock."""
    if conn.execute(f"SELECT 1 FROM webhook_outbox WHERE {_DUE} LIMIT 1", (now, now)).fetchone():
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows = conn.execute(
                f"SELECT id, alert_seq, body, attempts FROM webhook_outbox WHERE {_DUE}"
                " ORDER BY id LIMIT ?",
                (now, now, limit),
            ).fetchall()
            conn.executemany(
                "UPDATE webhook_outbox SET lease_owner = ?, lease_until = ?,"
                " attempts = attempts + 1 WHERE id = ?",
                [(owner, lease_until, r[0]) for r in rows],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return [Delivery(r[0], r[1], r[2], r[3] + 1) for r in rows]
    return []


def mark_delivered(conn: sqlite3.Connection, delivery_id: int, owner: str, now: str) -> bool:
    """False when the lease was lost meanwhile (another process took the row again)."""
    cur = conn.execute(
        "UPDATE webhook_outbox SET delivered_at = ?, lease_owner = '', lease_until = '',"
        " last_error = '' WHERE id = ? AND lease_owner = ?",
        (now, delivery_id, owner),
    )
    return cur.rowcount == 1


def mark_failed(
    conn: sqlite3.Connection, delivery_id: int, owner: str, next_at: str, error: str
) -> bool:
    cur = conn.execute(
        "UPDATE webhook_outbox SET next_at = ?, lease_owner = '', lease_until = '',"
        " last_error = ? WHERE id = ? AND lease_owner = ? AND delivered_at = ''",
        (next_at, error[:500], delivery_id, owner),
    )
    return cur.rowcount == 1


def undelivered(conn: sqlite3.Connection) -> int:
    (n,) = conn.execute("SELECT COUNT(*) FROM webhook_outbox WHERE delivered_at = ''").fetchone()
    return int(n)
