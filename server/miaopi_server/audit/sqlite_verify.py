"""Re-checking an audit database, of any schema version, read-only: a SQLite file
(`verify_database`), or any connection in one read snapshot (`check_records` and
`check_tree`, which the PostgreSQL store runs too: the same SQL, audit/dialect.py).

Records: every column is covered by the record hash or derived from what is (seq, chain,
canonical body, case digest, the indexed columns, kind). Seals: a record made before the tree
carries its own Ed25519 signature; every later one is sealed by the signed tree head of its
commit. The tree (schema 3 on): the Merkle root at every stored head's size is recomputed from
the records and the head's signature checked; every stored node is the hash of its children;
the last head covers exactly the records there are (a head beyond them: records were removed).
"""

from __future__ import annotations

import datetime as dt
import heapq
import json
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any

from miaopi_server.audit import merkle
from miaopi_server.audit.canonical import (
    GENESIS_HASH,
    NotCanonical,
    digest,
    parse_canonical_bytes,
)
from miaopi_server.audit.dialect import Connection, dialect_of
from miaopi_server.audit.seal import verify_seal, verify_signature
from miaopi_server.audit.sqlite_tree import (
    CachedNodes,
    all_heads,
    has_tree,
    heads_between,
    latest_head,
)
from miaopi_server.audit.store import Verification
from miaopi_server.audit.treehead import TreeHead
from miaopi_server.errors import AuditUnavailable


def connect_readonly(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=5)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def verify_database(
    path: Path,
    keys: dict[str, bytes],
    from_seq: int = 1,
    to_seq: int = 0,
    witness: TreeHead | None = None,
    parallel: bool = False,
) -> Verification:
    """Re-check an audit database: records in [from_seq, to_seq] (0: to the last), then the
    tree and its signed heads over the whole trail, and that the trail extends `witness` (a
    head signed earlier: the witness file, a receipt's). Works on a copy or a live database
    (one read transaction); `keys` maps key ids to raw Ed25519 public keys. `parallel`: a
    large trail is checked by worker processes, one per core (audit/sqlite_verify_pool.py;
    they are forked, so only from a process without threads: the CLI, not a server)."""
    if parallel:
        from miaopi_server.audit import sqlite_verify_pool as pool

        workers = pool.worker_count(_record_count(path, from_seq, to_seq))
        if workers:
            return pool.verify_in_workers(path, keys, from_seq, to_seq, witness, workers)
    conn = connect_readonly(path)
    try:
        conn.execute("BEGIN")  # one snapshot for the records and the tree
        return verify_snapshot(conn, keys, from_seq, to_seq, witness)
    finally:
        conn.close()


def _record_count(path: Path, from_seq: int, to_seq: int) -> int:
    """About how many records verify_database would check (seqs run 1, 2, ...)."""
    conn = connect_readonly(path)
    try:
        (last,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM records").fetchone()
    finally:
        conn.close()
    return int(min(to_seq, last) if to_seq else last) - max(from_seq, 1) + 1


def verify_snapshot(
    conn: Connection,
    keys: dict[str, bytes],
    from_seq: int = 1,
    to_seq: int = 0,
    witness: TreeHead | None = None,
) -> Verification:
    """verify_database on a connection already in one read snapshot (either backend)."""
    treed = has_tree(conn)
    head = latest_head(conn) if treed else None
    result = check_records(conn, keys, from_seq, to_seq, head.tree_size if head else 0)
    if result.ok and (treed or witness is not None):
        broken = check_tree(conn, keys, witness)
        if broken is not None:
            return Verification(False, result.checked, broken[0], broken[1])
    return result


def database_consistency(path: Path, first: int) -> tuple[TreeHead, list[bytes]]:
    """The latest signed head of the database at `path` and the RFC 9162 proof that its first
    `first` records are a prefix of it; ValueError when there is no such head or proof,
    AuditUnavailable when the database is not an audit trail."""
    conn = connect_readonly(path)
    try:
        conn.execute("BEGIN")
        if "records" not in dialect_of(conn).tables(conn):
            raise AuditUnavailable(f"audit database {path} is not an audit trail")
        return snapshot_consistency(conn, first, str(path))
    finally:
        conn.close()


def snapshot_consistency(conn: Connection, first: int, where: str) -> tuple[TreeHead, list[bytes]]:
    """database_consistency on a connection already in one read snapshot (either backend);
    `where` names the trail in messages."""
    head = latest_head(conn) if has_tree(conn) else None
    if head is None:
        raise ValueError(f"{where} has no signed tree head")
    try:
        return head, merkle.consistency_proof(first, head.tree_size, CachedNodes(conn))
    except LookupError as exc:
        raise ValueError(f"{where}: the tree is incomplete: {exc}") from None


def check_records(
    conn: Connection, keys: dict[str, bytes], from_seq: int, to_seq: int, covered_to: int
) -> Verification:
    """Records from_seq..to_seq, each on its own and chained to the one before; a record
    without a seal of its own must be at or below `covered_to` (the last signed head)."""
    return check_range(conn, keys, from_seq, to_seq, covered_to).verification


@dataclass(frozen=True)
class RangeCheck:
    """check_records of one range, and what merging ranges checked apart needs
    (audit/sqlite_verify_pool.py)."""

    verification: Verification
    next_seq: int  # the seq it expected next when it stopped (from_seq: it met no record)
    # Whether a failure's `purged` counts the purged cases met before it (a record's own
    # problem), or is 0 (a gap, a case missing), as check_records reports them.
    counts_purged: bool = False


def check_range(
    conn: Connection, keys: dict[str, bytes], from_seq: int, to_seq: int, covered_to: int
) -> RangeCheck:
    """check_records, as a RangeCheck."""
    from_seq = max(from_seq, 1)
    prev = GENESIS_HASH
    if from_seq > 1:
        row = conn.execute("SELECT hash FROM records WHERE seq = ?", (from_seq - 1,)).fetchone()
        if row is None:
            return RangeCheck(Verification(False, 0, from_seq - 1, "gap: record missing"), from_seq)
        prev = row[0]
    dialect = dialect_of(conn)
    columns = dialect.columns(conn, "records")
    kind = "r.kind" if "kind" in columns else "'decision'"
    # Since schema 4 the case is a row of `cases`, missing once purged.
    case, joined = (
        ("r.case_json", "")
        if "case_json" in columns
        else ("c.case_json", " LEFT JOIN cases c ON c.seq = r.seq")
    )
    # SQLite hands the texts over as their stored UTF-8 bytes (what is hashed): no decoding
    # into str and encoding back per record.
    if dialect.name == "sqlite":
        body, case = "CAST(r.body AS BLOB)", f"CAST({case} AS BLOB)"
    else:
        body = "r.body"
    sql = (
        "SELECT r.seq, r.decision_id, r.request_id, r.item_code, r.outcome, r.window_id,"
        f" r.decided_at, r.case_digest, {body}, {case}, r.hash, r.key_id, r.signature, {kind}"
        f" FROM records r{joined} WHERE r.seq >= ?"
    )
    args: list[int] = [from_seq]
    if to_seq:
        sql += " AND r.seq <= ?"
        args.append(to_seq)
    # Purge events are read only once a record needs one (a purged case, a rating comment).
    found: list[list[tuple[int, str]]] = []

    def purges() -> list[tuple[int, str]]:
        if not found:
            found.append(_purges(conn) if "kind" in columns else [])
        return found[0]

    expected_seq, checked, purged = from_seq, 0, 0
    for row in conn.execute(sql + " ORDER BY r.seq", args):
        seq, decided_at, case_json, h, kind_of = row[0], row[6], row[9], row[10], row[13]
        if seq != expected_seq:
            return RangeCheck(Verification(False, checked, expected_seq, "gap"), expected_seq)
        if case_json is None and kind_of == "decision":
            if not any(seq <= through and decided_at < before for through, before in purges()):
                why = "case missing, and no purge covers it"
                return RangeCheck(Verification(False, checked, seq, why), expected_seq)
            purged += 1
        problem, body_value = _check_record(row, prev, keys, covered_to)
        if not problem and kind_of == "transition":
            rating = body_value["transition"]
            if isinstance(rating, dict) and "comment_digest" in rating:
                problem = _comment_problem(conn, seq, rating, purges())
        if problem:
            failed = Verification(False, checked, seq, problem, purged)
            return RangeCheck(failed, expected_seq, counts_purged=True)
        prev, expected_seq, checked = h, seq + 1, checked + 1
    return RangeCheck(Verification(True, checked, purged=purged), expected_seq)


def _comment_problem(
    conn: Connection, seq: int, rating: dict[str, Any], purges: list[tuple[int, str]]
) -> str:
    """A rating's comment (rating_comments, migration 0009) matches the salted digest its
    record holds, or is gone because a purge erased the case it rates."""
    from miaopi_server.audit.transition import comment_digest  # casework's model: when used

    decision_id = rating.get("decision_id")
    row = conn.execute(
        "SELECT seq, salt, comment FROM rating_comments WHERE decision_id = ?", (decision_id,)
    ).fetchone()
    if row is not None:
        if row[0] != seq or comment_digest(row[1], row[2]) != rating["comment_digest"]:
            return "rating comment does not match its digest"
        return ""
    decided = conn.execute(
        "SELECT decided_at FROM records WHERE decision_id = ? AND kind = 'decision'",
        (decision_id,),
    ).fetchone()
    if decided is None or not any(
        seq <= through and decided[0] < before for through, before in purges
    ):
        return "rating comment missing, and no purge covers it"
    return ""


def _purges(conn: Connection) -> list[tuple[int, str]]:
    """(through_seq, before) of every purge event on the trail (each is checked as a
    record where it stands in the chain)."""
    found = []
    for (body,) in conn.execute("SELECT body FROM records WHERE kind = 'event'"):
        try:
            event = json.loads(body)["event"]
            if event.get("type") == "purge":
                found.append((int(event["through_seq"]), str(event["before"])))
        except (ValueError, KeyError, TypeError):
            continue  # not a valid event: its record check reports it
    return found


def _check_record(
    row: tuple[Any, ...], prev: str, keys: dict[str, bytes], covered_to: int
) -> tuple[str, Any]:
    """(problem, "") of one record, or ("", its parsed body)."""
    (
        seq,
        decision_id,
        request_id,
        item_code,
        outcome,
        window_id,
        decided_at,
        case_dig,
        body_text,
        case_json,
        h,
        key_id,
        sig,
        kind,
    ) = row
    data = body_text if body_text.__class__ is bytes else body_text.encode()
    try:
        body = parse_canonical_bytes(data)
    except NotCanonical:
        return "record is not in canonical form", ""
    except ValueError:
        return "record is not valid JSON", ""
    # The body is its canonical form, so its hash is that of the stored text.
    if sha256(data).hexdigest() != h:
        return "hash mismatch", ""
    if body.get("seq") != seq or body.get("prev_hash") != prev:
        return "chain broken", ""
    no_case = case_json is None or case_json in ("null", b"null")
    if "event" in body:  # the trail's own event: no decision, window or case
        from miaopi_server.audit.record import column_time  # casework's model: when used

        event = body["event"]
        derived_event = (event.get("id"), None, "", "", "", column_time(event.get("at")), "event")
        if (
            (decision_id, request_id, item_code, outcome, window_id, decided_at, kind)
            != (derived_event)
            or not no_case
            or case_dig != ""
        ):
            return "indexed columns disagree with the record", ""
        return _seal_problem(seq, h, keys.get(key_id), bytes(sig), covered_to), body
    if "transition" in body:  # a casework transition (audit/transition.py)
        from miaopi_server.audit.record import column_time

        moved = body["transition"]
        derived_move = (
            moved.get("id"), None, moved.get("item_code"), "", "", column_time(moved.get("at")),
            "transition",
        )  # fmt: skip
        if (
            (decision_id, request_id, item_code, outcome, window_id, decided_at, kind)
            != derived_move
            or not no_case
            or case_dig != ""
        ):
            return "indexed columns disagree with the record", ""
        return _seal_problem(seq, h, keys.get(key_id), bytes(sig), covered_to), body
    purged = case_json is None  # checked by the caller: a purge event covers it
    if body.get("case_digest") != case_dig:
        return "case does not match its digest", ""
    if not purged:
        problem = _case_problem(case_json, case_dig)
        if problem:
            return problem, ""
    decision = body.get("decision", {})
    derived = (
        decision.get("decision_id"),
        decision.get("request_id", "") or None,
        decision.get("item_code"),
        str(decision.get("outcome", "")).removeprefix("OUTCOME_"),
        body.get("window", {}).get("window_id", ""),
        _column_time(decision.get("decided_at")),
        "decision",
    )
    if derived != (decision_id, request_id, item_code, outcome, window_id, decided_at, kind):
        return "indexed columns disagree with the record", ""
    if not sig and key_id in keys and seq <= covered_to:  # sealed by a signed head
        return "", body
    return _seal_problem(seq, h, keys.get(key_id), bytes(sig), covered_to), body


# A proto3 JSON time as decisions hold it (0, 3 or 6 fractional digits), from year 1000 on
# (strftime does not pad below).
_PROTO_TIME = re.compile(
    r"([1-9][0-9]{3}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]{3}|[0-9]{6}))?Z"
)


def _column_time(rfc3339: object) -> str | None:
    """record.column_time, quicker for the times recorded decisions hold: once such a time
    parses, its column is itself with the fraction written to six digits."""
    if rfc3339.__class__ is str:
        m = _PROTO_TIME.fullmatch(rfc3339)
        if m:
            try:
                dt.datetime.fromisoformat(rfc3339)
            except ValueError:
                return None
            return f"{m[1]}.{(m[2] or '').ljust(6, '0')}Z"
    from miaopi_server.audit.record import column_time  # loads casework's model: seldom needed

    return column_time(rfc3339)


def _case_problem(case_json: str | bytes, case_dig: str) -> str:
    """Whether the stored case is what its digest hashed: the stored text itself when it is
    canonical (as the store writes it), else the canonical form of what it says."""
    data = case_json if isinstance(case_json, bytes) else case_json.encode()
    if sha256(data).hexdigest() == case_dig:
        return ""
    try:
        case = json.loads(case_json)
    except ValueError:
        return "record is not valid JSON"
    return "" if digest(case) == case_dig else "case does not match its digest"


def _seal_problem(seq: int, h: str, public_raw: bytes | None, sig: bytes, covered_to: int) -> str:
    if public_raw is None:
        return "unknown sealing key"
    if sig:  # a record made before the tree: sealed on its own
        if not verify_seal(public_raw, h, sig):
            return "bad signature"
    elif seq > covered_to:
        return "not sealed: no signature and no signed tree head covers it"
    return ""


def check_tree(
    conn: Connection, keys: dict[str, bytes], witness: TreeHead | None = None
) -> tuple[int, str] | None:
    """(seq, why) of the first problem in the tree and its heads, or in the trail against
    `witness`; None when they agree with the records. One pass over the record hashes, the
    stored nodes and the signed heads alongside (nothing held but the tree's frontier)."""
    return tree_pass(conn, keys, witness, signatures=True)[0]


def tree_pass(
    conn: Connection, keys: dict[str, bytes], witness: TreeHead | None, signatures: bool
) -> tuple[tuple[int, str] | None, int]:
    """check_tree, and the size of the last head whose root the pass found right. Without
    `signatures` the heads' signatures are left to the caller (checked elsewhere at the same
    time): a bad one at or below that size comes before the problem found here, if any."""
    treed = has_tree(conn)
    last = latest_head(conn) if treed else None
    (count,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM records").fetchone()
    if witness is not None:
        if not witness.verifies(keys):
            return (0, "witness is not signed by a known sealing key"), 0
        if witness.tree_size > count:
            why = (
                f"behind its witness: {witness.tree_size} records were signed, "
                f"the trail holds {count}"
            )
            return (count + 1, why), 0
    if treed and last is None and count:
        return (1, "not sealed: records but no signed tree head"), 0
    if last is not None and last.tree_size > count:
        why = (
            f"truncated: a signed tree head covers {last.tree_size} records, "
            f"the trail holds {count}"
        )
        return (count + 1, why), 0
    if last is not None and last.tree_size < count:
        return (last.tree_size + 1, "not sealed: after the last signed tree head"), 0
    heads = last is not None
    stored = _stored_nodes(conn) if heads else iter(())
    # Heads are read alongside the records too (one per commit: as many as the records, near
    # enough), the witness merged in after a head of its size.
    pending = heapq.merge(
        ((h.tree_size, 0, h) for h in (all_heads(conn) if heads else ())),
        [(witness.tree_size, 1, witness)] if witness else [],
        key=lambda c: (c[0], c[1]),
    )
    frontier: list[tuple[int, bytes]] = []  # (level, hash) of the maximal perfect subtrees
    point = next(pending, None)
    right_through = 0  # the size of the last head whose root was right
    for i, (h,) in enumerate(conn.execute("SELECT hash FROM records ORDER BY seq")):
        frontier.append((0, sha256(b"\x00" + bytes.fromhex(h)).digest()))  # merkle.leaf_hash
        while len(frontier) > 1 and frontier[-1][0] == frontier[-2][0]:
            (level, right), (_, left) = frontier.pop(), frontier.pop()
            node = sha256(b"\x01" + left + right).digest()  # merkle.node_hash
            frontier.append((level + 1, node))
            expected = (level + 1, (i + 1 >> level + 1) - 1, node)
            if heads and next(stored, None) != expected:
                return (
                    i + 1,
                    f"tree node {expected[:2]} does not match the records",
                ), right_through
        while point is not None and point[0] == i + 1:
            _, is_witness, head = point
            root = frontier[-1][1]
            for _, left in reversed(frontier[:-1]):
                root = merkle.node_hash(left, root)
            if is_witness and root.hex() != head.root_hash:
                why = f"forked from its witness: the first {i + 1} records differ"
                return (i + 1, why), right_through
            if root.hex() != head.root_hash:
                why = f"signed tree head {head.tree_size} does not match the records"
                return (i + 1, why), right_through
            right_through = i + 1
            if (signatures or is_witness) and not _signed(head, keys):
                return (i + 1, f"bad signature on tree head {head.tree_size}"), right_through
            point = next(pending, None)
    if next(stored, None) is not None:
        return (count, "tree holds nodes beyond the records"), right_through
    return None, right_through


def first_bad_head(conn: Connection, keys: dict[str, bytes], lo: int, hi: int) -> int | None:
    """The size of the first head in [lo, hi] that no known key signed, or None: the
    signature half of tree_pass, for a share of the heads."""
    for head in heads_between(conn, lo, hi):
        if not _signed(head, keys):
            return head.tree_size
    return None


def _signed(head: TreeHead, keys: dict[str, bytes]) -> bool:
    """Whether a known key signed the head."""
    key = keys.get(head.key_id)
    return key is not None and verify_signature(key, head.signed_bytes(), head.signature)


def _stored_nodes(conn: Connection) -> Iterator[tuple[int, int, bytes]]:
    """Stored nodes in the order a left-to-right pass completes them (a cursor of its own,
    read alongside the records)."""
    rows = conn.execute(
        "SELECT level, idx, hash FROM tree_nodes ORDER BY ((idx + 1) << level), level"
    )
    return ((level, idx, bytes(h)) for level, idx, h in rows)
