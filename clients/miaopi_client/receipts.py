"""Check a saved decision's receipt (e-seal, 免实体印章) offline, with the public key only.

A receipt and the decision it came with rebuild the audit record body (docs/AUDIT.md):

    {"seq", "prev_hash", "node_id", "case_digest",
     "window": {"window_id", "operator_id", "principal_id"},
     "decision": <the decision in proto3 JSON, original field names, without receipt>}

Its hash must equal receipt.record_hash and receipt.key_id must name the key given. A record
made since the trail is a Merkle tree is sealed by receipt.tree_head: its Ed25519 signature
must verify, and receipt.inclusion_proof must lead from the record hash (leaf seq - 1) to its
root (RFC 9162). A record made before carries its own signature over the raw hash bytes.

The decision may be in any of the shapes the client prints: the dict of client.decision_dict
(outcomes without the "OUTCOME_" prefix), the raw MessageToDict form (with it), or either
wrapped as {"decision": {...}} (GetDecision). It is parsed into the proto first and converted
back, exactly as the server formed the body; the round trip only normalizes how a value is
written (30 / 30.0, "7" / 7 for int64, enum name / number, a timestamp's offset) and never
what it is, so any change to any field's value still changes the hash. Unknown fields are
refused rather than dropped.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format

from miaopi.v1 import approval_pb2 as pb
from miaopi_server.offline import (  # each loads only the audit modules it comes from
    TreeHead,
    hash_body,
    key_id_of,
    leaf_hash,
    root_from_inclusion,
    verify_seal,
)

_PREFIX = "OUTCOME_"


@dataclass(frozen=True)
class ReceiptCheck:
    """The verdict on one receipt. `seq` and `key_id` are the receipt's, when it has one."""

    ok: bool
    reason: str
    seq: int = 0
    key_id: str = ""


class ReceiptFormatError(ValueError):
    """The input is not a decision (or a {"decision": ...} wrapper) the proto accepts."""


def unwrap(obj: Any) -> dict[str, Any]:
    """The decision dict inside `obj`: `obj` itself, or obj["decision"] for a wrapper."""
    if not isinstance(obj, dict):
        raise ReceiptFormatError("not a decision: expected a JSON object")
    inner = obj.get("decision")
    if isinstance(inner, dict) and "decision_id" not in obj:
        return inner
    return obj


def _prefixed(value: Any) -> Any:
    if isinstance(value, str) and value and not value.startswith(_PREFIX):
        return _PREFIX + value
    return value


def parse_decision(obj: Any) -> pb.Decision:
    """Any printed form of a decision -> pb.Decision (receipt included), strictly."""
    d = copy.deepcopy(unwrap(obj))
    if "outcome" in d:
        d["outcome"] = _prefixed(d["outcome"])
    reasons = d.get("reasons")
    if isinstance(reasons, list):
        for r in reasons:
            if isinstance(r, dict) and "outcome" in r:
                r["outcome"] = _prefixed(r["outcome"])
    try:
        return json_format.ParseDict(d, pb.Decision(), ignore_unknown_fields=False)
    except (json_format.ParseError, TypeError, ValueError) as exc:
        raise ReceiptFormatError(f"not a decision: {exc}") from None


def record_body(msg: pb.Decision) -> dict[str, Any]:
    """The audit record body a decision with its receipt stands for (receipt not included)."""
    receipt = msg.receipt
    bare = pb.Decision()
    bare.CopyFrom(msg)
    bare.ClearField("receipt")
    return {
        "seq": receipt.seq,
        "prev_hash": receipt.prev_hash,
        "node_id": receipt.node_id,
        "case_digest": receipt.case_digest,
        "window": {
            "window_id": receipt.window.window_id,
            "operator_id": receipt.window.operator_id,
            "principal_id": receipt.window.principal_id,
        },
        "decision": json_format.MessageToDict(bare, preserving_proto_field_name=True),
    }


def receipt_key_id(obj: Any) -> str:
    """The key id a saved decision claims to be sealed with ("" when it has none)."""
    try:
        receipt = unwrap(obj).get("receipt")
    except ReceiptFormatError:
        return ""
    key_id = receipt.get("key_id", "") if isinstance(receipt, dict) else ""
    return key_id if isinstance(key_id, str) else ""


def verify_receipt(decision: Any, public_key_raw: bytes) -> ReceiptCheck:
    """Check that `decision` is exactly what was recorded and sealed by `public_key_raw`
    (the raw 32-byte Ed25519 public key, as GetSealKey returns it)."""
    try:
        msg = parse_decision(decision)
    except ReceiptFormatError as exc:
        return ReceiptCheck(False, str(exc))
    if not msg.HasField("receipt"):
        return ReceiptCheck(False, "no receipt")
    receipt = msg.receipt
    seq, key_id = receipt.seq, receipt.key_id

    if hash_body(record_body(msg)) != receipt.record_hash:
        return ReceiptCheck(False, "record hash mismatch: the decision was changed", seq, key_id)
    expected_key = key_id_of(public_key_raw)
    if key_id != expected_key:
        return ReceiptCheck(
            False, f"sealed with another key: {key_id or '(none)'}, not {expected_key}", seq, key_id
        )
    if receipt.HasField("tree_head"):
        problem = _tree_problem(receipt, public_key_raw)
        if problem:
            return ReceiptCheck(False, problem, seq, key_id)
    elif not receipt.signature:
        return ReceiptCheck(False, "not sealed: no signature and no tree head", seq, key_id)
    if receipt.signature and not verify_seal(
        public_key_raw, receipt.record_hash, receipt.signature
    ):
        return ReceiptCheck(False, "bad signature", seq, key_id)
    return ReceiptCheck(True, "", seq, key_id)


def tree_head_of(receipt: pb.Receipt) -> TreeHead:
    h = receipt.tree_head
    return TreeHead(h.tree_size, h.root_hash, h.timestamp, h.key_id, h.signature)


def _tree_problem(receipt: pb.Receipt, public_key_raw: bytes) -> str:
    """Why the receipt's tree head or inclusion proof fails ("" when both hold)."""
    head = tree_head_of(receipt)
    if not head.verifies({key_id_of(public_key_raw): public_key_raw}):
        return "bad signature on the tree head"
    try:
        proof = [bytes.fromhex(h) for h in receipt.inclusion_proof]
        leaf = leaf_hash(bytes.fromhex(receipt.record_hash))
    except ValueError:
        return "inclusion proof is not hexadecimal"
    root = root_from_inclusion(receipt.seq - 1, head.tree_size, leaf, proof)
    if root is None or root.hex() != head.root_hash:
        return "not in the signed tree: the inclusion proof fails"
    return ""
