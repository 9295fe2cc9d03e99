"""The Merkle tree over the audit trail, as RFC 9162 (Certificate Transparency 2.0) §2.1
defines it: leaf i is record seq i+1, its data the 32 raw bytes of the record hash.

    leaf hash  = SHA-256(0x00 || data)
    node hash  = SHA-256(0x01 || left || right)
    MTH(D[n])  = the node hash of MTH(D[0:k]) and MTH(D[k:n]), k the largest power of 2 < n

Hashes are raw 32-byte values here. Every subtree the tree stores is perfect and aligned:
(level, index) covers leaves [index * 2**level, (index + 1) * 2**level); level 0 is a leaf.
Anything else (a right edge, a root) is computed from those by `subtree`. Proofs are the
RFC's PATH and PROOF, leaf-to-root order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()  # MTH of the empty list

NodeGetter = Callable[[int, int], bytes]  # (level, index) -> hash of a stored perfect subtree


def leaf_hash(record_hash: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + record_hash).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split(n: int) -> int:
    """The largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


Memo = dict[tuple[int, int], bytes]  # (lo, hi) -> MTH(D[lo:hi]) of right edges computed


def subtree(lo: int, hi: int, node: NodeGetter, memo: Memo | None = None) -> bytes:
    """MTH(D[lo:hi]) for a range the RFC's recursion reaches (lo aligned to its split).
    Proofs at one tree size share their right-edge subtrees: pass one `memo` to them all."""
    size = hi - lo
    if size == 0:
        return EMPTY_ROOT
    if size & (size - 1) == 0:  # perfect: stored
        level = size.bit_length() - 1
        return node(level, lo >> level)
    if memo is not None and (lo, hi) in memo:
        return memo[(lo, hi)]
    k = split(size)
    h = node_hash(subtree(lo, lo + k, node, memo), subtree(lo + k, hi, node, memo))
    if memo is not None:
        memo[(lo, hi)] = h
    return h


def inclusion_proof(m: int, n: int, node: NodeGetter, memo: Memo | None = None) -> list[bytes]:
    """PATH(m, D[0:n]) (RFC 9162 §2.1.3.1) for leaf index m < n."""
    if not 0 <= m < n:
        raise ValueError(f"leaf {m} is not in a tree of {n}")
    proof: list[bytes] = []
    lo, hi = 0, n
    while hi - lo > 1:
        k = split(hi - lo)
        if m < lo + k:
            proof.append(subtree(lo + k, hi, node, memo))
            hi = lo + k
        else:
            proof.append(subtree(lo, lo + k, node, memo))
            lo += k
    proof.reverse()  # collected root-down; the RFC lists them leaf-up
    return proof


def consistency_proof(m: int, n: int, node: NodeGetter) -> list[bytes]:
    """PROOF(m, D[0:n]) (RFC 9162 §2.1.4.1) for 0 < m <= n."""
    if not 0 < m <= n:
        raise ValueError(f"no consistency proof from {m} to {n}")
    proof: list[bytes] = []
    lo, hi, whole = 0, n, True  # SUBPROOF(m - lo, D[lo:hi], whole)
    while True:
        if m == hi:
            if not whole:
                proof.append(subtree(lo, hi, node))
            break
        k = split(hi - lo)
        if m <= lo + k:
            proof.append(subtree(lo + k, hi, node))
            hi = lo + k
        else:
            proof.append(subtree(lo, lo + k, node))
            lo, whole = lo + k, False
    proof.reverse()
    return proof


# -- checking (recursively from the definitions: the client's check of a receipt)


def root_from_inclusion(m: int, n: int, leaf: bytes, proof: Sequence[bytes]) -> bytes | None:
    """The root that `proof` (PATH(m, D[n])) and the leaf hash lead to; None if the proof
    has the wrong length for (m, n)."""
    path = list(proof)

    def climb(m: int, n: int) -> bytes | None:
        if n == 1:
            return leaf
        k = split(n)
        if not path:
            return None
        sibling = path.pop()  # the outermost sibling is the last element
        if m < k:
            inner = climb(m, k)
            return None if inner is None else node_hash(inner, sibling)
        inner = climb(m - k, n - k)
        return None if inner is None else node_hash(sibling, inner)

    if not 0 <= m < n:
        return None
    root = climb(m, n)
    return root if root is not None and not path else None


def roots_from_consistency(
    m: int, n: int, old_root: bytes, proof: Sequence[bytes]
) -> tuple[bytes, bytes] | None:
    """(MTH(D[m]), MTH(D[n])) as `proof` (PROOF(m, D[n])) rebuilds them, the old root given
    for the case the RFC leaves out of the proof; None if the proof has the wrong shape."""
    path = list(proof)

    def sub(m: int, n: int, whole: bool) -> tuple[bytes, bytes] | None:
        # (hash of D[0:m] within this subtree, hash of the whole subtree)
        if m == n:
            if whole:
                return old_root, old_root
            if not path:
                return None
            h = path.pop(0)
            return h, h
        k = split(n)
        if not path:
            return None
        if m <= k:
            sibling = path.pop()
            inner = sub(m, k, whole)
            if inner is None:
                return None
            return inner[0], node_hash(inner[1], sibling)
        sibling = path.pop()
        inner = sub(m - k, n - k, False)
        if inner is None:
            return None
        return node_hash(sibling, inner[0]), node_hash(sibling, inner[1])

    if not 0 < m <= n:
        return None
    if m == n:
        return (old_root, old_root) if not path else None
    got = sub(m, n, True)
    return got if got is not None and not path else None
