"""The audit record's form of a decision, built from the domain objects, is exactly protobuf's
proto3 JSON of the message the window receives."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from google.protobuf import json_format

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
