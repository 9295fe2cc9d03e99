"""The archive of published rule sets in the audit database (SQLite migration 0008,
PostgreSQL 0002): functions of a connection, plain SQL both backends run. A set is stored once
per digest; publishing the same text again adds nothing here (its event still goes on the
record)."""

from __future__ import annotations

import json

from miaopi_server.audit.dialect import Connection
from miaopi_server.audit.store import PublishedSet


def archive_set(conn: Connection, published: PublishedSet, at: str) -> bool:
    """Store the set unless its digest is already archived; True when it was new. Runs inside
    the caller's write transaction."""
    if is_archived(conn, published.set_digest):
        return False
    files = [{"path": p, "content": published.files[p]} for p in sorted(published.files)]
    conn.execute(
        "INSERT INTO published_rulesets (set_digest, files, first_published_at) VALUES (?, ?, ?)",
        (published.set_digest, json.dumps(files, ensure_ascii=False), at),
    )
    conn.executemany(
        "INSERT INTO published_items (item_digest, label, set_digest) VALUES (?, ?, ?)",
        [(d, label, published.set_digest) for label, d in sorted(published.versions.items())],
    )
    return True


def is_archived(conn: Connection, set_digest: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM published_rulesets WHERE set_digest = ?", (set_digest,)
    ).fetchone()
    return row is not None


def find_set(conn: Connection, digest: str) -> PublishedSet | None:
    """The archived set with this set digest, or the first published set holding an item
    version of this digest; None when there is none."""
    row = conn.execute(
        "SELECT set_digest, files, first_published_at FROM published_rulesets WHERE set_digest = ?",
        (digest,),
    ).fetchone()
    if row is None:
        row = conn.execute(
            "SELECT s.set_digest, s.files, s.first_published_at FROM published_items i"
            " JOIN published_rulesets s ON s.set_digest = i.set_digest"
            " WHERE i.item_digest = ? ORDER BY s.first_published_at LIMIT 1",
            (digest,),
        ).fetchone()
    if row is None:
        return None
    set_digest, files_json, at = row
    versions = dict(
        conn.execute(
            "SELECT label, item_digest FROM published_items WHERE set_digest = ? ORDER BY label",
            (set_digest,),
        ).fetchall()
    )
    files = {f["path"]: f["content"] for f in json.loads(files_json)}
    return PublishedSet(set_digest, files, versions, at)
