"""A verifier of Merkle proofs written from RFC 9162 (Certificate Transparency 2.0) alone,
to check the server's proofs without its code: §2.1.1 hashing, §2.1.3.2 verifying an
inclusion proof, §2.1.4.2 verifying consistency between two tree heads. Hashes are raw bytes.
"""

from __future__ import annotations

import hashlib


def leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(
    leaf_index: int, tree_size: int, leaf_hash: bytes, path: list[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2, step by step."""
    if leaf_index >= tree_size:  # 1
        return False
    fn, sn = leaf_index, tree_size - 1  # 2
    r = leaf_hash  # 3
    for p in path:  # 4
        if sn == 0:  # 4a
            return False
        if fn & 1 or fn == sn:  # 4b
            r = _node(p, r)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = _node(r, p)
        fn, sn = fn >> 1, sn >> 1  # 4c
    return sn == 0 and r == root  # 5


def verify_consistency(
    first: int, second: int, first_hash: bytes, second_hash: bytes, path: list[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2, step by step (a tree is consistent with itself by an empty proof)."""
    if first == second:
        return not path and first_hash == second_hash
    if not 0 < first < second or not path:  # 1
        return False
    if first & (first - 1) == 0:  # 2: first is an exact power of 2
        path = [first_hash, *path]
    fn, sn = first - 1, second - 1  # 3
    while fn & 1:  # 4
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]  # 5
    for c in path[1:]:  # 6
        if sn == 0:  # 6a
            return False
        if fn & 1 or fn == sn:  # 6b
            fr, sr = _node(c, fr), _node(c, sr)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = _node(sr, c)
        fn, sn = fn >> 1, sn >> 1  # 6c
    return fr == first_hash and sr == second_hash and sn == 0  # 7
