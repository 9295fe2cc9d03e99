"""Audit records: what is stored for every decision, and how its hash is formed.

A record body is
    {"seq", "prev_hash", "node_id", "case_digest", "window": {...}, "decision": {...}}
where `decision` is the decision as returned to the window (proto3 JSON, original field names,
receipt excluded) and `case_digest` the digest of the case as received (its materials as a
sorted set: case_record), which is stored beside the body.
record_hash = SHA-256(canonical(body)); the seal signs the raw hash bytes.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from miaopi_server.audit.canonical import canonical, sha256_hex
from miaopi_server.audit.treehead import TreeHead
from miaopi_server.casework.model import Task


def fixed_time(when: dt.datetime) -> str:
    """UTC time as fixed-width RFC 3339 (microseconds), so stored times sort as text. A naive
    time is UTC, as protobuf's Timestamp takes it."""
    if when.tzinfo is not dt.UTC:
        when = when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)
    if when.year < 1000:  # strftime's %Y does not pad these: keep its exact text
        return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # The same text as strftime, at a third of its cost (one per decision); %-formatting is
    # faster here than an f-string with format specs.
    parts = (when.year, when.month, when.day, when.hour, when.minute, when.second, when.microsecond)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % parts  # noqa: UP031


def column_time(rfc3339: object) -> str | None:
    """The `decided_at` column a record's decision.decided_at (proto3 JSON, RFC 3339 in UTC
    with 0, 3 or 6 fractional digits) stands for; None when it is not such a time."""
    if not isinstance(rfc3339, str) or not rfc3339.endswith("Z"):
        return None
    try:
        return fixed_time(dt.datetime.fromisoformat(rfc3339))
    except ValueError:
        return None


def case_record(item_code: str, facts: dict[str, Any], materials: Iterable[str]) -> dict[str, Any]:
    """A case as recorded: as received, except that its materials are the set they mean
    (sorted, each id once), so that a retry listing them in another order, or one twice, is
    the same case. Records written before this kept the order received; their stored
    case_json is what their digest hashed, so they still verify (and Recorder compares a
    retry with them by this form)."""
    return {"item_code": item_code, "facts": facts, "materials": sorted(set(materials))}


def case_canonical(item_code: str, facts: dict[str, Any], materials: Iterable[str]) -> bytes:
    """The canonical form of a recorded case: what is stored, and what its digest hashes."""
    return canonical(case_record(item_code, facts, materials))


def case_digest(item_code: str, facts: dict[str, Any], materials: Iterable[str]) -> str:
    return sha256_hex(case_canonical(item_code, facts, materials))


@dataclass(frozen=True)
class PendingRecord:
    """A decision waiting to be appended; seq, prev_hash and the seal are assigned on write.
    Its case and decision arrive already canonical (made in the request, not in the one
    writer thread); the writer splices them into the body."""

    decision_id: str
    request_id: str
    item_code: str
    outcome: str  # APPROVE | REJECT | MANUAL_REVIEW
    window_id: str
    decided_at: str  # fixed_time()
    case: dict[str, Any]  # case_record(...): as received, materials as a sorted set
    case_json: bytes  # case_canonical(...) of `case`
    case_digest: str  # sha256_hex(case_json)
    window: dict[str, str]
    node_id: str
    decision_json: bytes  # canonical(the decision's proto3 JSON, receipt excluded)
    # The task the decision opens (a review or a supplement), stored in the decision's commit,
    # with its JSON made in the request (not in the one writer thread). A case the rules close
    # at once has no task row: its decision record is the whole case.
    task: Task | None = None
    task_json: str = ""


@dataclass(frozen=True)
class PendingEvent:
    """An event of the trail itself, recorded in the chain like a decision: a re-anchored
    witness, a purge. Its body is {"event": {"id", "type", "at", ...details}, "node_id",
    "prev_hash", "seq"} (no decision, window or case)."""

    event_id: str
    at: str  # fixed_time(): also the decided_at column
    node_id: str
    details: dict[str, Any]  # {"type": ..., ...}
    # What the event stores beside the chain in its own commit, outside its body (a published
    # rule set's files: the body names their digest); None for most events.
    attachment: Any = field(default=None, compare=False)
    # A publication recorded only if, as seen in the writer's transaction, its attachment's
    # set is not "archived" yet (a start's: once per set on a trail however many nodes
    # start), or the event of its "act" and set is not on the trail yet: one reload every
    # `--workers` process carries out, whose event id they share (ops/workers.py). "": always.
    unless: Literal["", "archived", "act"] = field(default="", compare=False)

    def canonical_body(self, seq: int, prev_hash: str, extra: dict[str, Any]) -> bytes:
        event = {**self.details, **extra, "id": self.event_id, "at": self.at}
        return canonical(
            {"event": event, "node_id": self.node_id, "prev_hash": prev_hash, "seq": seq}
        )


@dataclass(frozen=True)
class StoredRecord:
    """A record as the trail holds it. The body is kept as its canonical text (what the hash
    covers); the receipt's parts are fields of their own, so a record just written is never
    parsed back (one read from the database arrives with its parsed body)."""

    seq: int
    decision_id: str
    request_id: str
    case_digest: str
    prev_hash: str
    node_id: str
    window: dict[str, str]
    body_json: str
    case: dict[str, Any]
    record_hash: str
    key_id: str
    signature: bytes  # a record's own seal (records made before the tree); b"" since
    tree_head: TreeHead | None = None  # the signed head of the commit that added it
    inclusion_proof: tuple[str, ...] = ()  # RFC 9162 PATH to tree_head's root, hex
    case_purged: bool = False  # the case was erased after its retention period (case = {})
    _parsed: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def body(self) -> dict[str, Any]:
        if self._parsed is None:
            object.__setattr__(self, "_parsed", json.loads(self.body_json))
        assert self._parsed is not None
        return self._parsed

    @property
    def decision(self) -> dict[str, Any]:
        return dict(self.body["decision"])


def hash_body(body: dict[str, Any]) -> str:
    return sha256_hex(canonical(body))


def canonical_body(seq: int, prev_hash: str, pending: PendingRecord) -> bytes:
    """The canonical body of the record (see the module docstring), spliced from the pending
    record's canonical parts (keys in sorted order) instead of re-encoding the decision."""
    return b"".join(
        (
            b'{"case_digest":',
            canonical(pending.case_digest),
            b',"decision":',
            pending.decision_json,
            b',"node_id":',
            canonical(pending.node_id),
            b',"prev_hash":',
            canonical(prev_hash),
            b',"seq":',
            str(seq).encode(),
            b',"window":',
            canonical(pending.window),
            b"}",
        )
    )


def chained_record(
    seq: int, record_id: str, prev_hash: str, node_id: str, body_json: str, record_hash: str,
    key_id: str,
) -> StoredRecord:  # fmt: skip
    """A record of the chain that is not a decision (an event, a casework transition): no
    request, case or window of its own, sealed by the tree head of its commit."""
    return StoredRecord(
        seq=seq,
        decision_id=record_id,
        request_id="",
        case_digest="",
        prev_hash=prev_hash,
        node_id=node_id,
        window={},
        body_json=body_json,
        case={},
        record_hash=record_hash,
        key_id=key_id,
        signature=b"",
    )
