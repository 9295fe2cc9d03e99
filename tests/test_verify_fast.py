"""The quick paths of audit verification say exactly what the plain ones said: the one-pass
canonical check (parse_canonical) against the documented formula, the stored case's own bytes
against its digest, and head signatures checked in threads against the first bad head."""

from __future__ import annotations

import json
import random
import sqlite3
import struct
from pathlib import Path

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from miaopi_server.audit import seal
from miaopi_server.audit.canonical import (
    NotCanonical,
    canonical,
    parse_canonical,
    parse_canonical_bytes,
)
from miaopi_server.audit.sqlite import SQLiteAuditStore, verify_database
from tests.support import pending

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1e16, 1.5e-7, 1e22, -0.0, 0.1, 30.0, 2.5])
    | st.text()
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=20,
)
_layouts = [
    {"sort_keys": True, "ensure_ascii": False, "separators": (",", ":")},  # canonical, floats
    {"sort_keys": True, "ensure_ascii": True, "separators": (",", ":")},  # \\u escapes
    {"sort_keys": False, "ensure_ascii": False, "separators": (",", ":")},  # key order
    {"sort_keys": True, "ensure_ascii": False},  # spaces
]


def _formula(value: object) -> bytes:
    """The documented one-liner (audit/canonical.py), integral floats as integers."""

    def number(t: str) -> float | int:
        return int(float(t)) if float(t).is_integer() else float(t)

    normal = json.loads(json.dumps(value), parse_float=number)
    return json.dumps(normal, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def _formula_accepts(text: str) -> bool:
    try:
        return _formula(json.loads(text)).decode() == text
    except ValueError:  # NaN has no canonical form
        return False


@settings(max_examples=600, deadline=None)
@given(_values)
def test_canonical_is_the_formula(value):
    """orjson's output (strings, key order, integers, floats as Python's repr) is the
    documented formula's, byte for byte."""
    assert canonical(value) == _formula(value)


def test_every_code_point_is_written_as_the_standard_encoder_writes_it():
    for start in range(0, 0x110000, 0x800):
        chars = [chr(c) for c in range(start, start + 0x800) if not 0xD800 <= c <= 0xDFFF]
        value = {c: c for c in chars}
        assert canonical(value) == _formula(value), hex(start)


def test_what_orjson_does_not_take_is_encoded_as_before():
    """Subclasses, integers beyond 64 bits, non-text keys: the standard path, same bytes;
    NaN and other types raise as they did."""
    import collections
    import datetime as dt

    import pytest

    class Num(float):
        pass

    for v in ({"a": 2**70}, {1: "x"}, collections.OrderedDict(b=Num(2.0), a=1e300)):
        assert (
            canonical(v)
            == json.dumps(
                v if not isinstance(v, collections.OrderedDict) else {"a": int(1e300), "b": 2},
                sort_keys=True,
                ensure_ascii=False,
                separators=(",", ":"),
            ).encode()
        )
    for bad, error in ((float("nan"), ValueError), (dt.date(2026, 1, 1), TypeError)):
        with pytest.raises(error):
            canonical({"x": [bad]})


@settings(max_examples=400, deadline=None)
@given(_values, st.sampled_from(range(len(_layouts))))
def test_parse_canonical_agrees_with_the_formula(value, layout):
    """Accepted exactly when canonical(json.loads(text)) is the text itself, in every layout
    (escapes, key order, spaces, integral floats, exponents, integers beyond 64 bits)."""
    for text in (canonical(value).decode(), json.dumps(value, **_layouts[layout])):
        try:
            parsed = parse_canonical(text)
        except NotCanonical:
            assert not _formula_accepts(text), text
        else:
            assert _formula_accepts(text), text
            assert parsed == json.loads(text)


def test_parse_canonical_refuses_forms_the_encoder_would_not_write():
    for text in ('{"a":30.0}', '{"a":1.5e-7}', '{"a":1.50}', '{"b":1,"a":2}', '{"a": 1}',
                 '{"a":NaN}', '"\\u4e2d"', '{"a":1e400}', '{"a":1e+16}'):  # fmt: skip
        try:
            parse_canonical(text)
        except NotCanonical:
            continue
        raise AssertionError(f"{text} taken as canonical")
    assert parse_canonical('{"a":[1.5e-07,10000000000000000,-1],"b":"中文"}') == {
        "a": [1.5e-07, 10**16, -1],
        "b": "中文",
    }


def _outcome(parse, text):
    """What a parse makes of `text`: its value, or which refusal."""
    try:
        return ("value", parse(text))
    except NotCanonical:
        return ("not canonical", None)
    except ValueError:
        return ("not JSON", None)


def _both(data: bytes) -> None:
    try:
        text = data.decode()
    except UnicodeDecodeError:
        assert _outcome(parse_canonical_bytes, data) == ("not JSON", None)
        return
    plain = _outcome(parse_canonical, text)
    assert _outcome(parse_canonical_bytes, data) == plain, data
    if plain[0] == "value":  # the same values, of the same types (1 is not 1.0)
        assert repr(parse_canonical_bytes(data)) == repr(plain[1])


@settings(max_examples=600, deadline=None)
@given(_values, st.sampled_from(range(len(_layouts))))
def test_the_quick_parse_agrees_with_the_plain_one(value, layout):
    """parse_canonical_bytes (orjson, the strict parser only where floats or refusals need
    it) gives what parse_canonical gives, on canonical text, other layouts and orjson's own
    text (integral floats as 30.0, exponents, small floats written out)."""
    for data in (
        canonical(value),
        json.dumps(value, **_layouts[layout]).encode(),
        orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
        if _orjson_takes(value)
        else b"{}",
    ):
        _both(data)


def _orjson_takes(value: object) -> bool:
    try:
        orjson.dumps(value)
    except TypeError:
        return False
    return True


def test_the_quick_parse_agrees_on_floats_of_every_magnitude():
    """orjson's float text is taken as canonical exactly when the strict parser takes it:
    100,000 floats from random bits (every exponent) and from everyday ranges."""
    rng = random.Random(17)
    for _ in range(50_000):
        bits = struct.unpack("d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        everyday = round(rng.uniform(-1e6, 1e6), rng.randint(0, 9)) * 10 ** rng.randint(-9, 17)
        for x in (bits, everyday):
            if x == x and abs(x) != float("inf"):
                data = orjson.dumps({"a": [x, 1], "b": x})
                assert _outcome(parse_canonical_bytes, data) == _outcome(
                    parse_canonical, data.decode()
                ), data


def test_the_quick_parse_refuses_what_the_plain_one_refuses():
    """Each refusal is the same finding (not canonical, or not JSON), never a crash: NaN,
    integers beyond 64 bits, lone surrogates, bad UTF-8, duplicate keys, other spellings."""
    for data in (b'{"a":NaN}', b'{"a":Infinity}', b'{"a":-Infinity}', b'{"a":1e400}',
                 b'{"a":123456789012345678901234567890}', b'{"a":-9223372036854775809}',
                 b'{"a":18446744073709551616}', b'{"a":"\\ud800"}', b'{"a":"\xff"}',
                 b'{"a":1,"a":1}', b'{"a":2,"a":1}', b'{"a":-0}', b'{"a":1E5}', b'{"a":1e5}',
                 b'{"a":30.0}', b'{"a":0.00001}', b'{"a":1e-05}', b'{"a":1e+16}', b'{"a":1.0}',
                 b'{"a":"x"} ', b'', b'{"a":', b'{"a":1}{}', b'{"a":"\\u4e2d"}', b'[1.5,2]',
                 b'{"a":[1.5e-07,10000000000000000,-1],"b":"\xe4\xb8\xad"}',
                 b'{"a":"2026-12-02T07:55:09.0Z","b":[0.5,0.25]}', b'{"a":0.0001}'):  # fmt: skip
        _both(data)
    assert parse_canonical_bytes(b'{"a":123456789012345678901234567890}') == {
        "a": 123456789012345678901234567890
    }


def test_a_record_without_floats_takes_the_quick_path(monkeypatch):
    """The agreement above is not had by always falling back: text without a float, and
    floats orjson writes as canonical does, are never parsed twice."""
    from miaopi_server.audit import canonical as module

    def refused(text: str) -> None:
        raise AssertionError(f"parsed again: {text}")

    monkeypatch.setattr(module, "parse_canonical", refused)
    body = {"decision": {"decided_at": "2026-12-02T07:55:09.487265Z", "outcome": "批准"},
            "n": [0, -1, 2**63 - 1], "x": [0.5, -2.25, 0.001, 123456.789], "ok": True}  # fmt: skip
    assert parse_canonical_bytes(canonical(body)) == body


def _store(tmp_path: Path, records: int) -> tuple[Path, dict[str, bytes]]:
    sealer, _ = seal.load_or_create(tmp_path / "key.pem")
    store = SQLiteAuditStore(tmp_path / "audit.sqlite3", sealer)
    for i in range(1, records + 1):  # one commit, so one signed head, each
        store.append(pending(i)).result()
    store.close()
    return tmp_path / "audit.sqlite3", {sealer.key_id: sealer.public_raw}


def test_a_record_in_another_form_under_its_own_hash_is_refused(tmp_path):
    """The hash is taken over the stored text only once the text is its canonical form."""
    db, keys = _store(tmp_path, 3)
    with sqlite3.connect(db) as conn:
        text = conn.execute("SELECT body FROM records WHERE seq = 2").fetchone()[0]
        spaced = json.dumps(json.loads(text), sort_keys=True, ensure_ascii=False)
        conn.execute("UPDATE records SET body = ? WHERE seq = 2", (spaced,))
    result = verify_database(db, keys)
    assert (result.ok, result.first_bad_seq, result.reason) == (
        False,
        2,
        "record is not in canonical form",
    )


def test_a_case_stored_in_another_form_still_verifies(tmp_path):
    """A case whose stored text is not canonical (older records) is checked by what it says."""
    db, keys = _store(tmp_path, 3)
    with sqlite3.connect(db) as conn:
        text = conn.execute("SELECT case_json FROM cases WHERE seq = 2").fetchone()[0]
        spaced = json.dumps(json.loads(text), indent=1)
        conn.execute("UPDATE cases SET case_json = ? WHERE seq = 2", (spaced,))
    assert verify_database(db, keys).ok
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE cases SET case_json = ? WHERE seq = 2", (spaced.replace("2", "3"),))
    result = verify_database(db, keys)
    assert (result.ok, result.first_bad_seq, result.reason) == (
        False,
        2,
        "case does not match its digest",
    )


def test_many_heads_report_the_first_bad_one(tmp_path):
    """300 heads (checked in threads): a bad signature is reported where the pass reaches
    it, and a root mismatch before it comes first."""
    db, keys = _store(tmp_path, 300)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE tree_heads SET signature = X'00' WHERE tree_size IN (150, 290)")
    result = verify_database(db, keys)
    assert (result.ok, result.first_bad_seq) == (False, 150), result
    assert result.reason == "bad signature on tree head 150"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE tree_heads SET root_hash = hex(zeroblob(32)) WHERE tree_size = 99")
    result = verify_database(db, keys)
    assert (result.ok, result.first_bad_seq) == (False, 99), result
    assert result.reason == "signed tree head 99 does not match the records"


_times = st.builds(
    lambda y, mo, d, h, mi, s, frac, end: (
        f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{frac}{end}"
    ),
    st.sampled_from([999, 1000, 1970, 2026, 9999]),
    st.integers(0, 13),
    st.integers(0, 32),
    st.integers(0, 24),
    st.integers(0, 60),
    st.integers(0, 61),
    st.sampled_from(
        ["", ".0", ".5", ".123", ".000", ".1234", ".123456", ".000000", ",123", ".123456789"]
    ),
    st.sampled_from(["Z", "", "+08:00", "z", "Z "]),
)


@settings(max_examples=1500, deadline=None)
@given(_times | st.text(max_size=30) | st.integers() | st.none())
def test_the_quick_column_time_is_record_column_time(value):
    """The indexed decided_at a decision's time stands for, as record.column_time says it."""
    from miaopi_server.audit.record import column_time
    from miaopi_server.audit.sqlite_verify import _column_time

    assert _column_time(value) == column_time(value)
    for time, column in (
        ("2026-12-02T07:55:04.375Z", "2026-12-02T07:55:04.375000Z"),
        ("2026-12-02T07:55:04Z", "2026-12-02T07:55:04.000000Z"),
        ("2026-12-02T07:55:04.487265Z", "2026-12-02T07:55:04.487265Z"),
    ):
        assert _column_time(time) == column_time(time) == column


def test_a_body_that_is_not_utf8_is_a_finding(tmp_path):
    """Read as its stored bytes, a body with bytes that are not UTF-8 is reported at its seq
    (it used to stop the check: sqlite3 could not decode the column)."""
    db, keys = _store(tmp_path, 3)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE records SET body = CAST(X'7b2261223a22ff227d' AS TEXT) WHERE seq = 2")
    conn.close()
    result = verify_database(db, keys)
    assert (result.ok, result.first_bad_seq, result.reason) == (
        False,
        2,
        "record is not valid JSON",
    )
