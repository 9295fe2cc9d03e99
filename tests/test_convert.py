"""The audit record's form of a decision, built from the domain objects, is exactly protobuf's
proto3 JSON of the message the window receives."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st

from miaopi_server.audit.decision_json import decision_json
from miaopi_server.edge import convert
from miaopi_server.errors import CaseInvalid
from tests.case_generator import ITEMS, generate
from tests.support import AS_OF

TODAY = dt.date.fromisoformat(AS_OF)
TIMES = [
    dt.datetime(2026, 11, 20, 1, 2, 3, tzinfo=dt.UTC),  # no fraction
    dt.datetime(2026, 11, 20, 1, 2, 3, 120000, tzinfo=dt.UTC),  # milliseconds
    dt.datetime(2026, 11, 20, 9, 2, 3, 123456, tzinfo=dt.timezone(dt.timedelta(hours=8))),
    dt.datetime(2026, 11, 20, 9, 2, 3, 5),  # naive: protobuf takes it as UTC
]


def _typed(value: object) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


@pytest.mark.parametrize("code", ITEMS)
def test_decision_json_equals_message_to_dict(catalog, code):
    """On 300 generated cases per item (every outcome, missing and pending materials, empty
    and full outputs, facts read and missing), with and without request_id, at three clock
    precisions: field for field and value for value the same as MessageToDict."""
    compared, outcomes = 0, set()
    for facts, materials in generate(code, 300, seed=11):
        try:
            d = catalog.decide(code, facts, materials, TODAY)
        except CaseInvalid:
            continue
        outcomes.add(d.outcome)
        for when in TIMES:
            for request_id in ("", "窗口-7"):
                expected = json_format.MessageToDict(
                    convert.decision_message(d, "d-1", request_id, when),
                    preserving_proto_field_name=True,
                )
                got = decision_json(d, "d-1", request_id, when)
                assert _typed(got) == _typed(expected)  # 30.0 stays 30.0, not 30
                compared += 1
    assert compared >= 6 * 200
    assert len(outcomes) >= 2, outcomes


def test_naive_time_is_utc_whatever_the_local_zone(catalog, monkeypatch):
    """protobuf takes a naive datetime as UTC; so must the record, also on a server whose
    local zone is Asia/Shanghai."""
    import time

    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    try:
        facts, materials = generate(ITEMS[0], 1, seed=1)[0]
        d = catalog.decide(ITEMS[0], facts, materials, TODAY)
        naive = dt.datetime(2026, 11, 20, 3, 4, 5, 120000)
        expected = json_format.MessageToDict(
            convert.decision_message(d, "d-1", "", naive), preserving_proto_field_name=True
        )
        got = decision_json(d, "d-1", "", naive)
        assert got["decided_at"] == expected["decided_at"] == "2026-11-20T03:04:05.120Z"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_timestamp_is_from_datetime():
    """convert.timestamp is Timestamp.FromDatetime, without its time-tuple round trip."""
    from google.protobuf import timestamp_pb2

    shanghai = dt.timezone(dt.timedelta(hours=8))
    for when in [
        *TIMES,
        dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
        dt.datetime(1900, 1, 1, tzinfo=shanghai),
        dt.datetime(2999, 12, 31, 23, 59, 59, 1),
    ]:
        expected = timestamp_pb2.Timestamp()
        expected.FromDatetime(when)
        assert convert.timestamp(when) == expected, when


def test_shared_parts_are_not_changed_by_a_decision(catalog):
    """Legal bases, materials and remedies are built once per model object and copied into
    each decision: two decisions of one item carry equal parts, and changing one's does not
    change the other's."""
    facts, materials = generate(ITEMS[0], 1, seed=2)[0]
    d = catalog.decide(ITEMS[0], facts, materials, TODAY)
    first = convert.decision_message(d, "d-1", "", TIMES[0])
    second = convert.decision_message(d, "d-2", "", TIMES[0])
    assert first.reasons == second.reasons and first.remedies == second.remedies
    assert any(r.HasField("legal_basis") for r in first.reasons)
    for r in first.reasons:
        r.legal_basis.citation = "changed"
    first.remedies.review_days = 999
    third = convert.decision_message(d, "d-3", "", TIMES[0])
    assert third.reasons == second.reasons and third.remedies == second.remedies


@pytest.mark.parametrize("code", ITEMS)
def test_decide_response_is_the_recorded_decision_with_its_receipt(catalog, code):
    """Decide's response, filled in place from the domain decision, is the message the record
    holds (what a repeated request_id answers with, parsed from the record's JSON) plus the
    receipt, field for field: on generated cases of every item (every outcome, remedies,
    missing and pending materials), with and without request_id."""
    from miaopi.v1 import approval_pb2 as pb
    from miaopi_server.audit.canonical import canonical
    from miaopi_server.audit.record import StoredRecord
    from miaopi_server.audit.recorder import Decided, Recorded
    from miaopi_server.audit.treehead import TreeHead

    head = TreeHead(9, "ab" * 32, 1_790_000_000_000, "k1", b"\xc2" * 64)
    outcomes, remedies = set(), 0
    for i, (facts, materials) in enumerate(generate(code, 120, seed=5)):
        try:
            d = catalog.decide(code, facts, materials, TODAY)
        except CaseInvalid:
            continue
        request_id = f"请求-{i}" if i % 2 else ""
        when = TIMES[i % len(TIMES)]
        body = {"decision": decision_json(d, f"d-{i}", request_id, when), "seq": 7}
        window = {"window_id": "窗口-1", "operator_id": "op", "principal_id": "win"}
        record = StoredRecord(
            7, f"d-{i}", request_id, "digest", "00" * 32, "node-1", window,
            canonical(body).decode(), {}, "ff" * 32, "k1", b"", head, ("aa" * 32, "bb" * 32),
        )  # fmt: skip
        fresh = convert.decide_response(Recorded(record, Decided(d, f"d-{i}", when)))
        repeat = convert.decide_response(Recorded(record, None))
        expected = pb.DecideResponse(
            decision=json_format.ParseDict(body["decision"], pb.Decision())
        )
        expected.decision.receipt.CopyFrom(
            pb.Receipt(
                seq=7, prev_hash="00" * 32, case_digest="digest", node_id="node-1",
                window=pb.Window(**window), record_hash="ff" * 32, key_id="k1",
                tree_head=pb.TreeHead(
                    tree_size=9, root_hash="ab" * 32, timestamp=1_790_000_000_000,
                    key_id="k1", signature=b"\xc2" * 64,
                ),
                inclusion_proof=["aa" * 32, "bb" * 32],
            )
        )  # fmt: skip
        assert fresh == expected == repeat
        assert pb.DecideResponse.FromString(fresh.SerializeToString()) == expected
        assert convert.recorded_decision(Recorded(record, None)) == expected.decision
        outcomes.add(d.outcome)
        remedies += d.remedies is not None
    assert len(outcomes) >= 2, outcomes
    assert remedies or "REJECT" not in outcomes


def test_record_times_are_the_text_strftime_gave():
    """fixed_time and the record's decided_at are formatted without strftime now: the same
    text as before on random times (naive, UTC, other offsets; every fraction shape)."""
    import random

    from miaopi_server.audit.decision_json import _json_timestamp
    from miaopi_server.audit.record import fixed_time

    def utc(when: dt.datetime) -> dt.datetime:
        return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)

    def json_before(when: dt.datetime) -> str:
        text, micros = utc(when).strftime("%Y-%m-%dT%H:%M:%S"), when.microsecond
        if micros == 0:
            return text + "Z"
        return f"{text}.{micros // 1000:03d}Z" if micros % 1000 == 0 else f"{text}.{micros:06d}Z"

    rng = random.Random(17)
    zones = [None, dt.UTC, dt.timezone(dt.timedelta(hours=8)), dt.timezone(dt.timedelta(hours=-5))]
    for _ in range(5000):
        micros = rng.choice([0, rng.randrange(1000) * 1000, rng.randrange(1_000_000)])
        when = dt.datetime(
            rng.randint(2, 9998), rng.randint(1, 12), rng.randint(1, 28), rng.randrange(24),
            rng.randrange(60), rng.randrange(60), micros, tzinfo=rng.choice(zones),
        )  # fmt: skip
        assert fixed_time(when) == utc(when).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), when
        assert _json_timestamp(when) == json_before(when), when


class _Text(str):
    pass


class _Number(float):
    pass


class _Whole(int):
    pass


_struct_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([10**400, 2**53 + 1])
    | st.floats()
    | st.text(max_size=6)
    | st.dates()
    | st.sampled_from([_Text("t"), _Number(0.5), _Whole(3), object()]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)


@settings(max_examples=600, deadline=None)
@given(st.dictionaries(st.text(max_size=4), _struct_values, max_size=5))
def test_fill_struct_is_update_of_json_value(values):
    """outputs and derived facts filled field by field: the same Struct (message and bytes)
    as Struct.update(json_value(...)), or the same error."""
    from google.protobuf import struct_pb2

    from miaopi_server.audit.decision_json import json_value

    def made(fill):
        s = struct_pb2.Struct()
        try:
            fill(s)
        except Exception as exc:
            return (type(exc), str(exc))
        return s, s.SerializeToString(deterministic=True)

    want = made(lambda s: s.update(json_value(values)))
    assert made(lambda s: convert.fill_struct(s, values)) == want
