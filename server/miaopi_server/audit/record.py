"""Audit records: what is stored for every decision, and how its hash is formed.

A record body is
    {"seq", "prev_hash", "node_id", "case_digest", "window": {...}, "decision": {...}}
where `decision` is the decision as returned to the window (proto3 JSON, original field names,
receipt excluded) and `case_digest` the digest of the case as received, which is stored beside
the body. record_hash = SHA-256(canonical(body)); the seal signs the raw hash bytes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from miaopi_server.audit.canonical import canonical, sha256_hex


def fixed_time(when: dt.datetime) -> str:
    """UTC time as fixed-width RFC 3339 (microseconds), so stored times sort as text."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def case_canonical(item_code: str, facts: dict[str, Any], materials: list[str]) -> bytes:
    """The canonical form of a case as received: what is stored, and what its digest hashes."""
    return canonical({"item_code": item_code, "facts": facts, "materials": list(materials)})


def case_digest(item_code: str, facts: dict[str, Any], materials: list[str]) -> str:
    return sha256_hex(case_canonical(item_code, facts, materials))


@dataclass(frozen=True)
class PendingRecord:
    """A decision waiting to be appended; seq, prev_hash and the seal are assigned on write."""

    decision_id: str
    request_id: str
    item_code: str
    outcome: str
    window_id: str
    decided_at: str  # fixed_time()
    decision: dict[str, Any]
    case: dict[str, Any]  # {"item_code", "facts", "materials"} as received
    case_digest: str
    window: dict[str, str]
    node_id: str
    # canonical(case) and canonical(decision), worked out where the record is made (the
    # request) rather than in the one writer thread; computed here when not given.
    case_json: bytes = b""
    decision_json: bytes = b""

    def __post_init__(self) -> None:
        if not self.case_json:
            object.__setattr__(self, "case_json", canonical(self.case))
        if not self.decision_json:
            object.__setattr__(self, "decision_json", canonical(self.decision))


@dataclass(frozen=True)
class StoredRecord:
    seq: int
    decision_id: str
    request_id: str
    case_digest: str
    body: dict[str, Any]
    case: dict[str, Any]
    record_hash: str
    key_id: str
    signature: bytes

    @property
    def decision(self) -> dict[str, Any]:
        return dict(self.body["decision"])


def make_body(seq: int, prev_hash: str, pending: PendingRecord) -> dict[str, Any]:
    return {
        "seq": seq,
        "prev_hash": prev_hash,
        "node_id": pending.node_id,
        "case_digest": pending.case_digest,
        "window": pending.window,
        "decision": pending.decision,
    }


def hash_body(body: dict[str, Any]) -> str:
    return sha256_hex(canonical(body))


def canonical_body(seq: int, prev_hash: str, pending: PendingRecord) -> bytes:
    """canonical(make_body(seq, prev_hash, pending)), spliced from the pending record's
    canonical parts (keys in sorted order) instead of re-encoding the whole decision."""
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
