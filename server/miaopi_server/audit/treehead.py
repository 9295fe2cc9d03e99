"""Signed tree heads: one Ed25519 signature per group commit over the Merkle root of the
whole trail (RFC 9162 §4.10, in canonical JSON instead of TLS encoding).

The signed bytes are the canonical JSON of

    {"root_hash": <hex>, "timestamp": <ms since the epoch>, "tree_size": n,
     "type": "miaopi.tree_head.v1"}

Record seals sign the 32 raw bytes of a record hash; a tree head's signed bytes are JSON text
and never 32 bytes long, so one signature cannot pass for the other.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from miaopi_server.audit.canonical import canonical
from miaopi_server.audit.seal import Sealer, verify_signature

HEAD_TYPE = "miaopi.tree_head.v1"


@dataclass(frozen=True)
class TreeHead:
    tree_size: int
    root_hash: str  # hex
    timestamp: int  # milliseconds since the Unix epoch
    key_id: str
    signature: bytes

    def signed_bytes(self) -> bytes:
        return head_bytes(self.tree_size, self.root_hash, self.timestamp)

    def verifies(self, keys: dict[str, bytes]) -> bool:
        public = keys.get(self.key_id)
        return public is not None and verify_signature(public, self.signed_bytes(), self.signature)

    def to_json(self) -> dict[str, Any]:
        """The head as the witness file and `miaopi audit` print it."""
        return {
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "timestamp": self.timestamp,
            "key_id": self.key_id,
            "signature": base64.b64encode(self.signature).decode(),
        }

    @classmethod
    def from_json(cls, obj: Any) -> TreeHead:
        """Raises ValueError when `obj` is not a tree head as to_json writes it."""
        try:
            head = cls(
                tree_size=obj["tree_size"],
                root_hash=obj["root_hash"],
                timestamp=obj["timestamp"],
                key_id=obj["key_id"],
                signature=base64.b64decode(obj["signature"], validate=True),
            )
        except (KeyError, TypeError, binascii.Error) as exc:
            raise ValueError(f"not a signed tree head: {exc}") from None
        if not (
            isinstance(head.tree_size, int)
            and isinstance(head.timestamp, int)
            and isinstance(head.root_hash, str)
            and len(head.root_hash) == 64
            and isinstance(head.key_id, str)
        ):
            raise ValueError("not a signed tree head: a field has the wrong type")
        return head


def head_bytes(tree_size: int, root_hash: str, timestamp: int) -> bytes:
    return canonical(
        {"root_hash": root_hash, "timestamp": timestamp, "tree_size": tree_size, "type": HEAD_TYPE}
    )


def sign_head(sealer: Sealer, tree_size: int, root: bytes, timestamp: int) -> TreeHead:
    root_hex = root.hex()
    signature = sealer.sign(head_bytes(tree_size, root_hex, timestamp))
    return TreeHead(tree_size, root_hex, timestamp, sealer.key_id, signature)
