"""The witness: the latest signed tree head, kept outside the database.

Truncating a database, or replacing it with an older copy, leaves a trail that is
self-consistent; what gives it away is a head this node signed earlier. Every receipt carries
one, and the witness file keeps the latest: written after every commit, under the writers'
lock (so it never goes backwards between `--workers`), by writing a new file and renaming it
over the old one. A trail behind its witness, or whose tree at the witness's size has another
root, has lost or replaced records: the node refuses to serve it (AuditTrailDiverged) until
an administrator re-anchors the witness, an act that is itself recorded (docs/AUDIT.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from miaopi_server.audit.treehead import TreeHead


def witness_path(database: Path) -> Path:
    """`<state-dir>/audit.witness.json` for `<state-dir>/audit.sqlite3`."""
    return database.with_name(f"{database.stem}.witness.json")


def read_witness(path: Path) -> TreeHead | None:
    """The head in the witness file, None when there is none. Raises ValueError when the
    file is there but is not a tree head (it is never written in place)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return TreeHead.from_json(json.loads(text))
    except ValueError as exc:
        raise ValueError(f"witness {path} is unreadable: {exc}") from None


def write_witness(path: Path, head: TreeHead) -> None:
    """Replace the witness with `head` atomically (the file is complete or not there)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(head.to_json(), f, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
