"""Is an audit trail still the one a saved tree head signed? (RFC 9162 consistency)

A tree head saved earlier (a receipt's `tree_head`, or the witness file) and a later signed
head with a consistency proof between them: both signatures must verify with the sealing key,
and the proof must rebuild both roots. Then every record the earlier head covered is still on
the trail, unchanged and in place; a trail truncated or rewritten since cannot pass.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from miaopi_server.offline import TreeHead, key_id_of, roots_from_consistency


@dataclass(frozen=True)
class ConsistencyCheck:
    ok: bool
    reason: str
    first: int = 0
    second: int = 0


def saved_head(obj: Any) -> TreeHead:
    """The tree head in a saved decision (its receipt's), a {"decision": ...} wrapper, a
    TreeHead message in JSON, or the witness file. Raises ValueError when there is none."""
    if isinstance(obj, dict) and isinstance(obj.get("decision"), dict):
        obj = obj["decision"]
    if isinstance(obj, dict) and isinstance(obj.get("receipt"), dict):
        obj = obj["receipt"].get("tree_head")
        if obj is None:
            raise ValueError("the receipt has no tree head (it was issued before the tree)")
    return head_from_json(obj)


def head_from_json(obj: Any) -> TreeHead:
    """A tree head as the witness file or proto3 JSON writes it (int64 may be text)."""
    if not isinstance(obj, dict):
        raise ValueError("not a tree head: expected a JSON object")
    try:
        return TreeHead(
            tree_size=int(obj["tree_size"]),
            root_hash=str(obj["root_hash"]),
            timestamp=int(obj["timestamp"]),
            key_id=str(obj["key_id"]),
            signature=base64.b64decode(obj.get("signature", ""), validate=True),
        )
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise ValueError(f"not a tree head: {exc}") from None


def check_consistency(
    first: TreeHead, second: TreeHead, proof: list[str], public_keys: list[bytes]
) -> ConsistencyCheck:
    keys = {key_id_of(k): k for k in public_keys}
    sizes = first.tree_size, second.tree_size
    for name, head in (("earlier", first), ("later", second)):
        if not head.verifies(keys):
            why = "unknown sealing key" if head.key_id not in keys else "bad signature"
            return ConsistencyCheck(False, f"the {name} tree head: {why}", *sizes)
    try:
        path = [bytes.fromhex(h) for h in proof]
        old_root = bytes.fromhex(first.root_hash)
    except ValueError:
        return ConsistencyCheck(False, "the proof is not hexadecimal", *sizes)
    roots = roots_from_consistency(first.tree_size, second.tree_size, old_root, path)
    if roots is None or roots[1].hex() != second.root_hash:
        return ConsistencyCheck(
            False,
            f"the trail of {second.tree_size} records does not extend the tree of "
            f"{first.tree_size} records: records were removed or changed",
            *sizes,
        )
    return ConsistencyCheck(True, "", *sizes)
