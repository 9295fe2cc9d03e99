"""The witness: the latest signed tree head, kept outside the database.

Truncating a database, or replacing it with an older copy, leaves a trail that is
self-consistent; what gives it away is a head this node signed earlier. Every receipt carries
one, and the witness file keeps the latest: written after every commit, under the writers'
lock (so it never goes backwards between `--workers`). A trail behind its witness, or whose
tree at the witness's size has another root, has lost or replaced records: the node refuses
to serve it (AuditTrailDiverged) until an administrator re-anchors the witness, an act that
is itself recorded (docs/AUDIT.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from miaopi_server.audit.treehead import TreeHead

SIZE = 512  # one disk sector: the head (about 260 bytes of JSON) padded with spaces


def witness_path(database: Path) -> Path:
    """`<state-dir>/audit.witness.json` for `<state-dir>/audit.sqlite3`."""
    return database.with_name(f"{database.stem}.witness.json")


def parse_witness(data: bytes, path: Path) -> TreeHead | None:
    """The head in the witness file's bytes (None for an empty file); ValueError when the
    file holds something else."""
    if not data.strip():
        return None
    try:
        return TreeHead.from_json(json.loads(data))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"witness {path} is unreadable: {exc}") from None


def read_witness(path: Path) -> TreeHead | None:
    """The head in the witness file, None when there is none. Raises ValueError when the
    file is there but is not a tree head."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return parse_witness(data, path)


class WitnessFile:
    """The witness file as a writer keeps it open. Each head is written in place, one
    sector at offset 0: no rename (on ext4 a rename over a file flushes its data, which cost
    a millisecond in every commit) and no fsync (a second one per commit). The records are
    durable (the commit's own fsync) before the witness is written, so after a crash the
    witness can only lag behind the database, a trail that extends it; a sector half
    written leaves a file that does not parse, and the node refuses to start until an
    administrator re-anchors it (docs/AUDIT.md)."""

    def __init__(self, path: Path):
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def read(self) -> TreeHead | None:
        return parse_witness(os.pread(self._fd, SIZE, 0), self.path)

    def write(self, head: TreeHead) -> None:
        data = (json.dumps(head.to_json(), sort_keys=True) + "\n").encode()
        os.pwrite(self._fd, data.ljust(SIZE), 0)

    def close(self) -> None:
        os.close(self._fd)


def write_witness(path: Path, head: TreeHead) -> None:
    """Write the witness file once (tests and tools; the store keeps a WitnessFile)."""
    w = WitnessFile(path)
    try:
        w.write(head)
    finally:
        w.close()
