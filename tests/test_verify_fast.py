"""The quick paths of audit verification say exactly what the plain ones said: the one-pass
canonical check (parse_canonical) against the documented formula, the stored case's own bytes
against its digest, and head signatures checked in threads against the first bad head."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from miaopi_server.audit import seal
from miaopi_server.audit.canonical import NotCanonical, canonical, parse_canonical
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
