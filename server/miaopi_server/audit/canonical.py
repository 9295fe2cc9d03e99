"""Canonical JSON, the byte form every audit hash is computed over.

Sorted keys, UTF-8 (no \\u escapes), no insignificant whitespace, and numbers with an integral
value written without a fraction (30.0 -> 30), so that any JSON library can reproduce it:

    hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False,
                              separators=(",", ":")).encode()).hexdigest()
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

GENESIS_HASH = "0" * 64


def _normalize(value: Any) -> Any:
    # Exact types first (what decisions and cases are made of), by class identity: this walk
    # runs over every record on the request path, and isinstance chains cost it twice.
    t = value.__class__
    if t is str or t is int or t is bool or value is None:
        return value
    if t is float:
        return int(value) if value.is_integer() else value
    if t is dict:
        return {k: _normalize(v) for k, v in value.items()}
    if t is list or t is tuple:
        return [_normalize(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _normalize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalize(v) for v in value]
    return value


_dumps = json.JSONEncoder(
    sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False
).encode


def canonical(value: Any) -> bytes:
    return _dumps(_normalize(value)).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest(value: Any) -> str:
    return sha256_hex(canonical(value))
