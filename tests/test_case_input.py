"""What a window sends in a case is taken as sent or refused with the field named: a value of
the wrong JSON type is never dropped or replaced (application.date above all), dotted keys
are refused everywhere, as-of dates are bounded, and names carry no invisible characters."""

from __future__ import annotations

import datetime as dt
import shutil
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from miaopi.v1 import approval_pb2 as pb
from miaopi.v1 import approval_pb2_grpc as pb_grpc
from miaopi_server.audit.record import case_digest
from miaopi_server.decision.catalog import Catalog
from miaopi_server.decision.workdays import add_working_days
from miaopi_server.errors import CaseInvalid
from miaopi_server.rules.fieldtypes import (
    EARLIEST_AS_OF,
    LATEST_AS_OF,
    MAX_TIME_LIMIT_DAYS,
)
from miaopi_server.rules.loader import load_rule_file
from miaopi_server.settings import Settings
from tests.conftest import LiveServer
from tests.support import (
    BUSINESS,
    BUSINESS_MATERIALS,
    DEVICE,
    DEVICE_MATERIALS,
    DISABILITY,
    DISABILITY_MATERIALS,
    PUBLISHED_AT_START,
    ROOT,
    RULESETS,
    SENIOR,
    SENIOR_MATERIALS,
    decide_request,
    rule_file,
    with_facts,
)

TODAY = dt.date(2026, 11, 23)
BASES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "GF00012000": (SENIOR, SENIOR_MATERIALS),
    "GF00034001": (DISABILITY, DISABILITY_MATERIALS),
    "XK00051000": (BUSINESS, BUSINESS_MATERIALS),
    "BA00027000": (DEVICE, DEVICE_MATERIALS),
}
# A business case that goes to MANUAL_REVIEW (catering needs an on-site check): it has a due date.
REVIEWED = with_facts(BUSINESS, business__scope=["餐饮服务"])


@pytest.fixture(scope="module")
def stub(live_server):
    channel = grpc.insecure_channel(live_server.target)
    yield pb_grpc.ApprovalServiceStub(channel)
    channel.close()


def refused(stub: Any, code: str, facts: dict[str, Any], materials: list[str]) -> set[str]:
    """Decide over gRPC, expect INVALID_ARGUMENT, return the fields it names."""
    with pytest.raises(grpc.RpcError) as info:
        stub.Decide(decide_request(code, facts, materials))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    status = rpc_status.from_call(info.value)
    bad = error_details_pb2.BadRequest()
    assert status is not None and status.details[0].Unpack(bad)
    return {v.field for v in bad.field_violations}


def violations(catalog: Catalog, code: str, facts: Any, materials: list[str]) -> dict[str, str]:
    with pytest.raises(CaseInvalid) as info:
        catalog.decide(code, facts, materials, TODAY)
    return {v.field: v.description for v in info.value.violations}


# -- 10: a value of the wrong JSON type is refused, never replaced --------------------------

WRONG_DATES = [20261120, 2026.5, True, False, ["2026-11-20"], {"y": 2026}, {}, []]


class TestApplicationDateType:
    @pytest.mark.parametrize("value", WRONG_DATES, ids=repr)
    def test_refused_not_replaced_by_today(self, catalog, value):
        """application.date given as a number, bool, list or object names the field."""
        facts = with_facts(SENIOR, application__date=value)
        found = violations(catalog, "GF00012000", facts, SENIOR_MATERIALS)
        assert list(found) == ["facts.application.date"]

    @pytest.mark.parametrize("value", [20261120, True, ["2026-11-20"], {"y": 2026}], ids=repr)
    def test_refused_over_grpc(self, stub, value):
        facts = with_facts(SENIOR, application__date=value)
        assert refused(stub, "GF00012000", facts, SENIOR_MATERIALS) == {"facts.application.date"}

    def test_null_still_means_not_given(self, catalog):
        """null is "not given" for every field: the case is decided as of today."""
        facts = with_facts(SENIOR, application__date=None)
        facts["application"]["date"] = None
        assert catalog.decide("GF00012000", facts, SENIOR_MATERIALS, TODAY).as_of == TODAY


SAMPLES: list[Any] = ["x", 3, 2.5, True, ["x"], {"x": 1}]


def _takes(kind: str, value: Any) -> bool:
    """Whether a field type takes a JSON value of this type (its value may still be bad)."""
    if kind in ("integer", "number"):
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return number and (kind == "number" or float(value).is_integer())
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "string_list":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return isinstance(value, str)


def test_every_field_refuses_every_wrong_type(catalog):
    """Every form field of every shipped item (application.date included): each JSON value of
    a type the field does not take is refused naming that field, never dropped, defaulted or
    replaced."""
    checked = 0
    for code in catalog.codes:
        facts, materials = BASES[code]
        for f in catalog.current(code, TODAY).item.fields.values():
            if f.derived:
                continue
            subject, name = f.path.split(".")
            for value in (v for v in SAMPLES if not _takes(f.kind, v)):
                case = with_facts(facts, **{f"{subject}__{name}": value})
                found = violations(catalog, code, case, materials)
                assert f"facts.{f.path}" in found, (code, f.path, value, found)
                checked += 1
    assert checked > 150


# -- 11: dotted keys are refused, everywhere ------------------------------------------------


class TestDottedKeys:
    def test_top_level_dotted_date_refused(self, catalog):
        """{"application.date": ...} is not the nested key: refused, not read by one part of
        the server and ignored by another (it chose no rule version, yet was validated)."""
        facts = with_facts(SENIOR, application=None)
        facts["application.date"] = "2019-06-01"  # before the shipped version is in force
        found = violations(catalog, "GF00012000", facts, SENIOR_MATERIALS)
        assert list(found) == ["facts.application.date"]
        assert "'application.date'" in found["facts.application.date"]

    def test_flat_beside_nested_refused(self, catalog):
        """A flat "applicant.hukou_region" beside the nested one: neither silently wins."""
        facts = dict(SENIOR)
        facts["applicant.hukou_region"] = "110101"
        found = violations(catalog, "GF00012000", facts, SENIOR_MATERIALS)
        assert list(found) == ["facts.applicant.hukou_region"]
        assert "'applicant.hukou_region'" in found["facts.applicant.hukou_region"]

    def test_dotted_key_inside_a_subject_refused(self, catalog):
        facts = with_facts(SENIOR)
        facts["applicant"]["name.x"] = "张三"
        found = violations(catalog, "GF00012000", facts, SENIOR_MATERIALS)
        assert list(found) == ["facts.applicant.name.x"]
        assert "'name.x'" in found["facts.applicant.name.x"]

    def test_refused_over_grpc(self, stub):
        facts = with_facts(SENIOR, application=None)
        facts["application.date"] = "2026-11-20"
        assert refused(stub, "GF00012000", facts, SENIOR_MATERIALS) == {"facts.application.date"}


# -- 12: as-of dates are bounded; the due date is always a date -----------------------------


class TestAsOfRange:
    @pytest.mark.parametrize("day", ["9999-12-31", "2200-01-01", "1899-12-31", "0001-01-01"])
    def test_out_of_range_refused_over_grpc(self, stub, day):
        """A MANUAL_REVIEW case dated 9999-12-31 was INTERNAL (OverflowError in the due date)."""
        facts = with_facts(REVIEWED, application__date=day)
        assert refused(stub, "XK00051000", facts, BUSINESS_MATERIALS) == {"facts.application.date"}

    @pytest.mark.parametrize("day", ["9999-12-31", "1899-12-31"])
    def test_message_states_the_range(self, catalog, day):
        facts = with_facts(REVIEWED, application__date=day)
        found = violations(catalog, "XK00051000", facts, BUSINESS_MATERIALS)
        assert found == {"facts.application.date": "应在 1900-01-01 至 2199-12-31 之间"}

    def test_last_day_has_a_due_date(self, stub):
        """The last as-of date decides, and its review due date lies beyond it (estimated)."""
        facts = with_facts(REVIEWED, application__date=LATEST_AS_OF.isoformat())
        d = stub.Decide(decide_request("XK00051000", facts, BUSINESS_MATERIALS)).decision
        assert d.outcome == pb.OUTCOME_MANUAL_REVIEW
        assert d.as_of_date == "2199-12-31"
        assert d.review_due_date > "2199-12-31" and d.review_due_date_estimated

    def test_due_date_safe_at_both_ends(self):
        """The longest time limit from either end of the range is a date, not an overflow."""
        for start in (EARLIEST_AS_OF, LATEST_AS_OF):
            due = add_working_days(start, MAX_TIME_LIMIT_DAYS)
            assert start < due.date < start + dt.timedelta(days=2 * MAX_TIME_LIMIT_DAYS)
            assert due.estimated

    def test_due_date_never_overflows(self):
        """Outside the bounds it is a ValueError saying so, never an OverflowError or a loop."""
        with pytest.raises(ValueError, match="days must be within"):
            add_working_days(TODAY, MAX_TIME_LIMIT_DAYS + 1)
        with pytest.raises(ValueError, match="no working day"):
            add_working_days(dt.date.max - dt.timedelta(days=3), 5)

    def test_rule_file_time_limit_bounded(self, tmp_path):
        """A time limit beyond MAX_TIME_LIMIT_DAYS is a located load error (a due date is
        counted day by day: 10**9 days would stall a decision)."""
        text = rule_file(
            """\
            form:
              t.x: {type: string}
            rules:
              - {id: r1, when: 't.x == "a"', outcome: MANUAL_REVIEW, message: m, basis: art1}
            """
        ).replace("statutory_working_days: 5", f"statutory_working_days: {MAX_TIME_LIMIT_DAYS + 1}")
        path = tmp_path / "t.yaml"
        path.write_text(text, encoding="utf-8")
        _, diags = load_rule_file(path, tmp_path, {})
        assert [(d.code, d.line, d.message) for d in diags] == [
            ("MP105", 7, "法定办结时限不能超过 1000 个工作日")
        ]
        ok = text.replace(f"{MAX_TIME_LIMIT_DAYS + 1}", f"{MAX_TIME_LIMIT_DAYS}")
        path.write_text(ok, encoding="utf-8")
        assert load_rule_file(path, tmp_path, {})[1] == []


# -- 17a: names carry no invisible characters and are not blank -----------------------------

INVISIBLE = ["\u202e", "\u2028", "\u2029", "\u200b", "\u200d", "\ufeff", "\u00ad", "\u2066"]


class TestVisibleText:
    @pytest.mark.parametrize("ch", INVISIBLE, ids=lambda c: f"U+{ord(c):04X}")
    def test_format_characters_refused(self, catalog, ch):
        """U+202E can make 陈建国 display as another name; U+2028 breaks lines in logs and
        receipts; U+200B makes two names that look the same differ."""
        facts = with_facts(SENIOR, applicant__name=f"陈{ch}建国")
        found = violations(catalog, "GF00012000", facts, SENIOR_MATERIALS)
        assert found == {"facts.applicant.name": f"含有不可见的格式字符或分隔符（U+{ord(ch):04X}）"}

    @pytest.mark.parametrize("blank", [" ", "   ", "\u3000\u3000", "\u00a0"], ids=repr)
    def test_whitespace_only_refused(self, catalog, blank):
        facts = with_facts(SENIOR, applicant__name=blank)
        found = violations(catalog, "GF00012000", facts, SENIOR_MATERIALS)
        assert found == {"facts.applicant.name": "不能只有空白字符"}

    @pytest.mark.parametrize(
        ("name", "message"),
        [
            ("\u3164", "不能只有不可见字符"),  # Hangul filler
            ("\u115f\u1160", "不能只有不可见字符"),
            ("\u2800", "不能只有不可见字符"),  # blank braille pattern
            ("\u0301\u0301", "不能只有不可见字符"),  # combining marks alone
            ("\u034f", "不能只有不可见字符"),
            ("陈\ufffd", "含有控制字符或无效字符"),  # damaged text
            ("\ufffc", "含有控制字符或无效字符"),
            (" 陈建国", "首尾不能有空白字符"),
            ("陈建国\u3000", "首尾不能有空白字符"),
        ],
        ids=repr,
    )
    def test_nothing_to_see_refused(self, catalog, name, message):
        """Names that show nothing, or carry damage or edge spaces (the red team's second
        round: fillers, braille blanks and combining marks were accepted as names)."""
        facts = with_facts(SENIOR, applicant__name=name)
        found = violations(catalog, "GF00012000", facts, SENIOR_MATERIALS)
        assert found == {"facts.applicant.name": message}

    def test_list_items_too(self, catalog):
        for item, message in (("  ", "第 2 项不能只有空白字符"), ("理发\u200b", "第 2 项含有")):
            facts = with_facts(BUSINESS, business__scope=["理发服务", item])
            found = violations(catalog, "XK00051000", facts, BUSINESS_MATERIALS)
            assert found["facts.business.scope"].startswith(message), found

    def test_existing_messages_stay(self, catalog):
        """Empty is still 不能为空 and a control character still its own message."""
        for value, message in (("", "不能为空"), ("陈\x07建国", "含有控制字符或无效字符")):
            facts = with_facts(SENIOR, applicant__name=value)
            assert violations(catalog, "GF00012000", facts, SENIOR_MATERIALS) == {
                "facts.applicant.name": message
            }

    @pytest.mark.parametrize("name", ["阿卜杜·热合曼", "Li Na", "欧阳　娜娜", "陈建国"])
    def test_real_names_accepted(self, catalog, name):
        """Middle dots, inner spaces (also 全角) and plain Chinese names are names."""
        facts = with_facts(SENIOR, applicant__name=name)
        assert catalog.decide("GF00012000", facts, SENIOR_MATERIALS, TODAY).outcome == "APPROVE"

    def test_refused_over_grpc(self, stub):
        facts = with_facts(SENIOR, applicant__name="\u202e国建陈")
        assert refused(stub, "GF00012000", facts, SENIOR_MATERIALS) == {"facts.applicant.name"}


# -- 17b: materials are a set: order and repeats do not make another case -------------------

OLD_DB = ROOT / "tests" / "data" / "audit-v0-ebea569.sqlite3"
OLD_KEY_PEM = ROOT / "tests" / "data" / "audit-v0-ebea569.seal.pub.pem"


def _decide(stub: Any, request_id: str, materials: list[str], window: str = "") -> pb.Decision:
    req = decide_request(
        "GF00012000",
        SENIOR,
        materials,
        request_id=request_id,
        window=pb.Window(window_id=window),
    )
    return stub.Decide(req).decision


class TestMaterialsAreASet:
    def test_retry_in_another_order_is_the_same_request(self, stub):
        """A retry listing the materials in another order, or one of them twice, gets the
        original decision back (was ALREADY_EXISTS); other materials are still a conflict."""
        first = _decide(stub, "set-1", ["id_card", "hukou_book", "bank_account"])
        for again in (
            ["bank_account", "id_card", "hukou_book"],
            ["hukou_book", "id_card", "bank_account", "id_card"],
        ):
            d = _decide(stub, "set-1", again)
            assert (d.decision_id, d.receipt.seq) == (first.decision_id, first.receipt.seq)
            assert d.receipt.case_digest == first.receipt.case_digest
        with pytest.raises(grpc.RpcError) as info:
            _decide(stub, "set-1", ["id_card", "hukou_book"])
        assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS

    def test_digest_is_of_the_sorted_set(self, stub):
        d = _decide(stub, "set-2", ["id_card", "bank_account", "hukou_book", "bank_account"])
        assert d.receipt.case_digest == case_digest(
            "GF00012000", SENIOR, ["bank_account", "hukou_book", "id_card"]
        )
        got = stub.GetDecision(pb.GetDecisionRequest(decision_id=d.decision_id))
        assert list(got.case["materials"]) == ["bank_account", "hukou_book", "id_card"]
        assert stub.VerifyAuditTrail(pb.VerifyAuditTrailRequest()).ok

    def test_old_records_still_verify_and_answer_retries(self, tmp_path):
        """A trail written by ebea569 (materials digested in the order received) verifies as
        before, and a retry of one of its requests gets the old decision back, whether the
        materials come in the order then recorded or in another."""
        state = tmp_path / "state"
        state.mkdir()
        shutil.copyfile(OLD_DB, state / "audit.sqlite3")
        server = LiveServer(
            Settings(
                listen="127.0.0.1:0",
                rulesets=RULESETS,
                state_dir=state,
                previous_seal_keys=(OLD_KEY_PEM,),
            )
        )
        try:
            with grpc.insecure_channel(server.target) as channel:
                old = pb_grpc.ApprovalServiceStub(channel)
                v = old.VerifyAuditTrail(pb.VerifyAuditTrailRequest())
                assert (v.ok, v.checked) == (True, 6 + PUBLISHED_AT_START), v  # + the start's
                recorded = old.GetDecision(pb.GetDecisionRequest(decision_id=OLD_DECISION))
                materials = list(recorded.case["materials"])
                assert materials == ["id_card", "hukou_book", "bank_account"]  # not sorted
                facts = json_format.MessageToDict(recorded.case["facts"])
                for again in (materials, sorted(materials), materials[::-1] + materials[:1]):
                    req = decide_request(
                        "GF00012000",
                        facts,
                        again,
                        request_id="请求-0002",
                        window=pb.Window(window_id="南海区-窗口1"),
                    )
                    d = old.Decide(req).decision
                    assert (d.decision_id, d.receipt.seq) == (OLD_DECISION, 2)
                v = old.VerifyAuditTrail(pb.VerifyAuditTrailRequest())
                assert (v.ok, v.checked) == (True, 6 + PUBLISHED_AT_START), v  # + the start's
        finally:
            server.stop()


OLD_DECISION = "e9d52f20-e3ed-4c12-9f68-9bcc4bce18e2"  # seq 2 of the ebea569 trail
