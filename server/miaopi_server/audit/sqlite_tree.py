"""The Merkle tree and signed tree heads as an audit database stores them (SQLite migration
0003, PostgreSQL 0001; the same SQL for both, audit/dialect.py): reading nodes and heads,
growing the tree by a batch, and proofs.

A leaf is never stored: leaf i is computed from records.hash of seq i + 1. Every perfect
subtree above the leaves is a row of tree_nodes (level, idx, hash), written in the same
transaction as the records it covers, with the head signed over the new root.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from miaopi_server.audit import merkle
from miaopi_server.audit.dialect import Connection, dialect_of, insert_rows
from miaopi_server.audit.treehead import TreeHead

_HEAD = "SELECT tree_size, root_hash, timestamp, key_id, signature FROM tree_heads"


def _head(row: tuple[Any, ...] | None) -> TreeHead | None:
    if row is None:
        return None
    size, root, timestamp, key_id, signature = row
    return TreeHead(int(size), str(root), int(timestamp), str(key_id), bytes(signature))


def latest_head(conn: Connection) -> TreeHead | None:
    return _head(conn.execute(_HEAD + " ORDER BY tree_size DESC LIMIT 1").fetchone())


def head_of_size(conn: Connection, size: int) -> TreeHead | None:
    return _head(conn.execute(_HEAD + " WHERE tree_size = ?", (size,)).fetchone())


def head_covering(conn: Connection, seq: int) -> TreeHead | None:
    """The first head that covers record `seq`: the one signed with it."""
    row = conn.execute(
        _HEAD + " WHERE tree_size >= ? ORDER BY tree_size LIMIT 1", (seq,)
    ).fetchone()
    return _head(row)


def all_heads(conn: Connection) -> Iterator[TreeHead]:
    for row in conn.execute(_HEAD + " ORDER BY tree_size"):
        head = _head(row)
        assert head is not None
        yield head


def heads_between(conn: Connection, lo: int, hi: int) -> Iterator[TreeHead]:
    """The heads of sizes lo..hi, smallest first."""
    for row in conn.execute(
        _HEAD + " WHERE tree_size BETWEEN ? AND ? ORDER BY tree_size", (lo, hi)
    ):
        head = _head(row)
        assert head is not None
        yield head


def insert_head(conn: Connection, head: TreeHead) -> None:
    conn.execute(
        "INSERT INTO tree_heads (tree_size, root_hash, timestamp, key_id, signature)"
        " VALUES (?,?,?,?,?)",
        (head.tree_size, head.root_hash, head.timestamp, head.key_id, head.signature),
    )


def stored_node(conn: Connection, level: int, idx: int) -> bytes:
    """A perfect subtree's hash; raises LookupError when the database lacks it."""
    if level == 0:
        row = conn.execute("SELECT hash FROM records WHERE seq = ?", (idx + 1,)).fetchone()
        if row is None:
            raise LookupError(f"no record {idx + 1}")
        return merkle.leaf_hash(bytes.fromhex(row[0]))
    row = conn.execute(
        "SELECT hash FROM tree_nodes WHERE level = ? AND idx = ?", (level, idx)
    ).fetchone()
    if row is None:
        raise LookupError(f"no tree node ({level}, {idx})")
    return bytes(row[0])


class CachedNodes:
    """Node lookups for one request or batch: what was computed or read stays at hand."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.known: dict[tuple[int, int], bytes] = {}

    def __call__(self, level: int, idx: int) -> bytes:
        got = self.known.get((level, idx))
        if got is None:
            got = self.known[(level, idx)] = stored_node(self.conn, level, idx)
        return got

    def prefetch(self, keys: Iterable[tuple[int, int]]) -> None:
        """Read these nodes in two queries instead of one each (a round trip each on a
        server database); any still missing raises LookupError when asked for."""
        wanted = [k for k in keys if k not in self.known]
        leaves = [idx + 1 for level, idx in wanted if level == 0]
        inner = [k for k in wanted if k[0] > 0]
        if leaves:
            marks = ",".join("?" * len(leaves))
            for seq, h in self.conn.execute(
                f"SELECT seq, hash FROM records WHERE seq IN ({marks})", leaves
            ):
                self.known[(0, int(seq) - 1)] = merkle.leaf_hash(bytes.fromhex(h))
        if inner:
            where = " OR ".join(["(level = ? AND idx = ?)"] * len(inner))
            args = [v for k in inner for v in k]
            for level, idx, h in self.conn.execute(
                f"SELECT level, idx, hash FROM tree_nodes WHERE {where}", args
            ):
                self.known[(int(level), int(idx))] = bytes(h)


class TreeGrowth:
    """Leaves appended to a tree of `size` leaves, inside the writer's transaction: the
    nodes they complete (to insert), and proofs at the grown size without reading back."""

    def __init__(
        self,
        conn: Connection,
        size: int,
        frontier: dict[tuple[int, int], bytes] | None = None,
    ):
        self.size = size
        self.nodes = CachedNodes(conn)
        self.new_nodes: list[tuple[int, int, bytes]] = []
        if frontier is not None:  # kept from the commit before (this process made it)
            self.nodes.known.update(frontier)
        else:
            self.nodes.prefetch(frontier_of(size))
            for level, idx in frontier_of(size):
                self.nodes(level, idx)

    def frontier(self) -> dict[tuple[int, int], bytes]:
        """The maximal perfect subtrees of the tree as grown: all the next growth needs."""
        return {key: self.nodes(*key) for key in frontier_of(self.size)}

    def add(self, record_hash: str) -> None:
        i = self.size
        node = merkle.leaf_hash(bytes.fromhex(record_hash))
        self.nodes.known[(0, i)] = node
        level = 0
        while i >> level & 1:  # a right child completes its parent
            idx = i >> level
            node = merkle.node_hash(self.nodes(level, idx - 1), node)
            level += 1
            self.nodes.known[(level, idx >> 1)] = node
            self.new_nodes.append((level, idx >> 1, node))
        self.size += 1

    def root(self) -> bytes:
        return merkle.subtree(0, self.size, self.nodes)

    def save(self) -> None:
        insert_rows(self.nodes.conn, "INSERT INTO tree_nodes (level, idx, hash)", 3, self.new_nodes)
        self.new_nodes = []


def frontier_of(size: int) -> list[tuple[int, int]]:
    """(level, idx) of the maximal perfect subtrees of a tree of `size` leaves, left first."""
    out, lo = [], 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            out.append((level, lo >> level))
            lo += 1 << level
    return out


def inclusion_proof_hex(
    seq: int, tree_size: int, nodes: merkle.NodeGetter, memo: merkle.Memo | None = None
) -> tuple[str, ...]:
    return tuple(h.hex() for h in merkle.inclusion_proof(seq - 1, tree_size, nodes, memo))


def has_tree(conn: Connection) -> bool:
    """Whether the database has the tree tables (schema version 3 or later)."""
    return "tree_heads" in dialect_of(conn).tables(conn)
