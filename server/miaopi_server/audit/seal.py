"""Electronic seal (免实体印章): Ed25519 signatures over audit record hashes.

Anyone holding the public key can check offline that a receipt was issued by this server and
that no field of the sealed record changed since (电子签名法 Art. 13).
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nacl.bindings import crypto_sign_open
from nacl.exceptions import CryptoError

from miaopi_server.audit.canonical import sha256_hex

_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


def key_id_of(public_raw: bytes) -> str:
    """Short, stable id of a public key: the first 16 hex digits of its SHA-256."""
    return "ed25519:" + sha256_hex(public_raw)[:16]


@dataclass(frozen=True)
class Sealer:
    private_key: Ed25519PrivateKey

    @cached_property  # read for every record written
    def public_raw(self) -> bytes:
        return self.private_key.public_key().public_bytes(*_RAW)

    @property
    def public_pem(self) -> str:
        return (
            self.private_key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    @cached_property
    def key_id(self) -> str:
        return key_id_of(self.public_raw)

    def seal(self, record_hash: str) -> bytes:
        return self.private_key.sign(bytes.fromhex(record_hash))

    def sign(self, data: bytes) -> bytes:
        return self.private_key.sign(data)


def load_or_create(path: Path) -> tuple[Sealer, bool]:
    """Load the PEM private key at `path`; create one (owner-only) if absent.

    Returns (sealer, created). A created key is for development: production keys are
    provisioned and rotated by operators (docs/AUDIT.md).
    """
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path}: not an Ed25519 private key")
        return Sealer(key), False
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return Sealer(key), True


def verify_seal(public_raw: bytes, record_hash: str, signature: bytes) -> bool:
    try:
        data = bytes.fromhex(record_hash)
    except ValueError:
        return False
    return verify_signature(public_raw, data, signature)


def verify_signature(public_raw: bytes, data: bytes, signature: bytes) -> bool:
    """Whether `signature` is the Ed25519 signature of `data` by `public_raw` (RFC 8032).

    Checked by libsodium (PyNaCl) rather than OpenSSL: a third less CPU per check, which is
    what an offline verify of a long trail spends most on (a signed head per group commit,
    docs/BENCHMARKS.md). It also refuses what OpenSSL lets through (small-order keys,
    non-canonical points), which no signature this server makes contains."""
    if len(signature) != 64 or len(public_raw) != 32:
        return False
    try:
        crypto_sign_open(bytes(signature) + data, bytes(public_raw))
    except (CryptoError, ValueError, TypeError):
        return False
    return True


def public_key_from_pem(pem: str) -> bytes:
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key.public_bytes(*_RAW)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
