"""Canonical JSON, the byte form every audit hash is computed over.

Sorted keys, UTF-8 (no \\u escapes), no insignificant whitespace, and numbers with an integral
value written without a fraction (30.0 -> 30), so that any JSON library can reproduce it:

    hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False,
                              separators=(",", ":")).encode()).hexdigest()
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import orjson

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


class _Unusual(Exception):
    """A value that _prepared leaves to the standard encoder (whatever it makes of it)."""


_INF = float("inf")


def _prepared(value: Any) -> Any:
    """_normalize for orjson, exact JSON types only: a non-integral float becomes its repr
    as a Fragment (orjson writes some exponents differently from Python's repr)."""
    t = value.__class__
    if t is str or t is int or t is bool or value is None:
        return value
    if t is float:
        if value.is_integer():
            return int(value)
        if value != value or value == _INF or value == -_INF:
            raise _Unusual
        return orjson.Fragment(repr(value))
    if t is dict:
        return {k: _prepared(v) for k, v in value.items()}
    if t is list or t is tuple:
        return [_prepared(v) for v in value]
    raise _Unusual


def canonical(value: Any) -> bytes:
    # orjson writes strings, integers and structure exactly as the standard encoder does (every
    # code point is checked in tests/test_verify_fast.py) at a tenth of its cost; anything
    # else (subclasses, other types, NaN, integers beyond 64 bits, non-text keys, lone
    # surrogates) takes the standard path, which also raises what it always raised.
    try:
        return orjson.dumps(_prepared(value), option=orjson.OPT_SORT_KEYS)
    except (_Unusual, orjson.JSONEncodeError):
        return _dumps(_normalize(value)).encode("utf-8")


class NotCanonical(Exception):
    """Raised while parsing text that cannot be canonical JSON."""


def _canonical_float(text: str) -> float:
    value = float(text)
    # canonical JSON writes an integral value as an integer, any other as Python's repr
    if value.is_integer() or repr(value) != text:
        raise NotCanonical(text)
    return value


_parse = json.JSONDecoder(parse_float=_canonical_float).decode


def parse_canonical(text: str) -> Any:
    """The value of `text` if `text` is exactly its canonical form; NotCanonical if it is
    valid JSON in another form, ValueError if it is not JSON.

    One parse and one encoding: every float is checked as it is parsed (not integral, and
    written as canonical writes it), so the value needs no normalising, and its canonical form
    is the sorted compact encoding. orjson's (three times faster than the standard encoder)
    is the same text for every string, integer and structure, and for floats as checked here;
    where it differs (exponents, integers beyond 64 bits) the standard encoder decides."""
    value = _parse(text)
    try:
        if orjson.dumps(value, option=orjson.OPT_SORT_KEYS) == text.encode():
            return value
    except TypeError:  # orjson.JSONEncodeError: e.g. an integer beyond 64 bits
        pass
    try:
        again = _dumps(value)
    except ValueError:  # NaN or an infinity: no canonical form
        raise NotCanonical(text[:40]) from None
    if again != text:
        raise NotCanonical(text[:40])
    return value


# Where orjson's float may differ from canonical's (Python's repr, integral values as
# integers): an integral float (30.0), a small one written out (0.00001, which repr writes
# 1e-05), an exponent (1e+16, 1.5e-7). Elsewhere they are the same text (tests/
# test_verify_fast.py checks it on a million floats). Two searches with a literal start, the
# quick kind for the regex engine; matches inside strings only cost the slow path.
_INTEGRAL_OR_SMALL = re.compile(rb"\.0(?:[,\]}]|000|\Z)")
_EXPONENT = re.compile(rb"e[-+][0-9]+(?:[,\]}]|\Z)")
_ORJSON_FAILS = (orjson.JSONDecodeError, TypeError)


def parse_canonical_bytes(data: bytes) -> Any:
    """parse_canonical of UTF-8 `data`, with the same results, by a quicker path for what
    canonical records are made of: orjson's parse, and its sorted encoding equal to `data`.
    That equality proves key order, spacing, escapes and no duplicate keys; where orjson's
    float may not be canonical's (see _EXPONENT), and for anything orjson refuses (NaN,
    integers beyond 64 bits, lone surrogates, bad UTF-8), parse_canonical decides."""
    try:
        value = orjson.loads(data)
        if (
            orjson.dumps(value, option=orjson.OPT_SORT_KEYS) == data
            and _INTEGRAL_OR_SMALL.search(data) is None
            and _EXPONENT.search(data) is None
        ):
            return value
    except _ORJSON_FAILS:
        pass
    return parse_canonical(data.decode())  # UnicodeDecodeError is a ValueError: not JSON


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest(value: Any) -> str:
    return sha256_hex(canonical(value))
