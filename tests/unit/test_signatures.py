"""audit/seal.verify_signature (libsodium) against OpenSSL's Ed25519 check (cryptography): the
same answer on honest signatures and on every one-bit change of key, message or signature,
and False (never an exception) on pieces of the wrong size."""

from __future__ import annotations

import os
import random

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from miaopi_server.audit.seal import verify_signature

RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


def openssl_says(public_raw: bytes, data: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


def flip(b: bytes, bit: int) -> bytes:
    out = bytearray(b)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def test_agrees_with_openssl_on_honest_and_tampered_signatures() -> None:
    rng = random.Random(17)
    agreed = {True: 0, False: 0}
    for _ in range(40):
        key = Ed25519PrivateKey.generate()
        public = key.public_key().public_bytes(*RAW)
        data = os.urandom(rng.randrange(0, 200))
        sig = key.sign(data)
        cases = [(public, data, sig)]
        cases += [(public, data, flip(sig, rng.randrange(512))) for _ in range(8)]
        cases += [(flip(public, rng.randrange(256)), data, sig) for _ in range(4)]
        if data:
            cases += [(public, flip(data, rng.randrange(len(data) * 8)), sig) for _ in range(4)]
        for case in cases:
            expected = openssl_says(*case)
            assert verify_signature(*case) is expected
            agreed[expected] += 1
    assert agreed[True] >= 40 and agreed[False] >= 500  # both answers really exercised


def test_wrong_sizes_are_false_not_errors() -> None:
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(*RAW)
    sig = key.sign(b"head")
    assert verify_signature(public, b"head", sig)
    for public_raw, signature in [
        (public, sig[:63]),
        (public, sig + b"\0"),
        (public, b""),
        (public[:31], sig),
        (b"", sig),
        (public + b"\0", sig),
    ]:
        assert verify_signature(public_raw, b"head", signature) is False
