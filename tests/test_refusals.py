"""Issue 12 item 5: a refusal reads as a refusal. The reasons that decided the outcome come
first (REJECT, then MANUAL_REVIEW, then APPROVE; rule-file order within a group), and every
REJECT carries the remedies notice (行政许可法 Art. 38: 行政复议 within 60 days, 行政诉讼 within
6 months) naming the bodies the rule file or its department configures."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from miaopi.v1 import approval_pb2 as pb
from miaopi.v1 import approval_pb2_grpc as pb_grpc
from miaopi_client import render
from miaopi_client.cli import main
from miaopi_client.receipts import verify_receipt
from miaopi_client.wire import wire_decision
from miaopi_server.decision.catalog import load_catalog
from miaopi_server.decision.decide import Reason, deciding_first
from miaopi_server.rules.directory import compile_directory
from miaopi_server.rules.lint import lint_directory
from tests.support import (
    AS_OF,
    BUSINESS,
    BUSINESS_MATERIALS,
    DEVICE,
    DEVICE_MATERIALS,
    RULESETS,
    SENIOR,
    SENIOR_MATERIALS,
    decide_request,
    resident_id,
    rule_file,
    with_facts,
)

TODAY = dt.date.fromisoformat(AS_OF)
NANHAI = ("佛山市南海区人民政府", "佛山市南海区人民法院")
WITHOUT_BANK = ["id_card", "hukou_book"]  # the senior allowance's bank account is missing


@pytest.fixture(scope="module")
def stub(live_server: Any) -> Iterator[pb_grpc.ApprovalServiceStub]:
    channel = grpc.insecure_channel(live_server.target)
    yield pb_grpc.ApprovalServiceStub(channel)
    channel.close()


# -- the order of reasons -----------------------------------------------------------------------


class TestDecidingReasonsFirst:
    def test_missing_material_leads_not_eligible(self, catalog):
        """The issue's case: eligible by age and hukou, but the bank account is missing. The
        refusal leads with the material; `eligible` (符合…条件) comes last."""
        d = catalog.decide("GF00012000", SENIOR, WITHOUT_BANK, TODAY)
        assert d.outcome == "REJECT"
        assert [r.rule_id for r in d.reasons] == ["material:bank_account", "eligible"]

    def test_policy_refusals_before_materials_before_approvals(self, catalog):
        """Under 70 and not local, bank account missing: the REJECT group keeps rule-file
        order (rules, then the materials notice) and nothing approving is in it."""
        facts = with_facts(
            SENIOR,
            applicant__id_number=resident_id("1960-01-01"),
            applicant__hukou_region="440604",
        )
        d = catalog.decide("GF00012000", facts, WITHOUT_BANK, TODAY)
        assert [(r.rule_id, r.outcome) for r in d.reasons] == [
            ("under_70", "REJECT"),
            ("not_local_hukou", "REJECT"),
            ("material:bank_account", "REJECT"),
        ]

    def test_review_before_approval(self, catalog):
        """A 105-year-old: MANUAL_REVIEW decides, so very_old_verify leads eligible."""
        facts = with_facts(SENIOR, applicant__id_number=resident_id("1920-01-01"))
        d = catalog.decide("GF00012000", facts, SENIOR_MATERIALS, TODAY)
        assert d.outcome == "MANUAL_REVIEW"
        assert [r.rule_id for r in d.reasons] == ["very_old_verify", "eligible"]

    def test_refusal_over_review_over_approval(self, catalog):
        """105 years old and the bank account missing: REJECT, then MANUAL_REVIEW, then
        APPROVE."""
        facts = with_facts(SENIOR, applicant__id_number=resident_id("1920-01-01"))
        d = catalog.decide("GF00012000", facts, WITHOUT_BANK, TODAY)
        assert [r.outcome for r in d.reasons] == ["REJECT", "MANUAL_REVIEW", "APPROVE"]

    def test_an_outcome_raised_by_data_leads_with_its_reasons(self):
        """Shared data may make a REJECT a MANUAL_REVIEW (a disputed fact): then the review
        reasons decided, and they lead, ahead of the refusal they overrule."""
        reasons = tuple(
            Reason(rid, outcome, "", None, ())
            for rid, outcome in (
                ("data:conflict", "MANUAL_REVIEW"),
                ("eligible", "APPROVE"),
                ("under_70", "REJECT"),
                ("very_old", "MANUAL_REVIEW"),
            )
        )
        ordered = deciding_first(reasons, "MANUAL_REVIEW")
        assert [r.rule_id for r in ordered] == ["data:conflict", "very_old", "under_70", "eligible"]

    def test_grpc_and_record_have_the_same_order(self, stub):
        d = stub.Decide(decide_request("GF00012000", SENIOR, WITHOUT_BANK)).decision
        assert [r.rule_id for r in d.reasons] == ["material:bank_account", "eligible"]
        got = stub.GetDecision(pb.GetDecisionRequest(decision_id=d.decision_id)).decision
        assert [r.rule_id for r in got.reasons] == ["material:bank_account", "eligible"]

    def test_clerk_reads_what_refused_first(self, catalog):
        """The CLI's decision notice puts the deciding reasons under 理由 and the rules that
        matched without deciding after them, apart."""
        text = render.decision(
            wire_decision(catalog.decide("GF00012000", SENIOR, WITHOUT_BANK, TODAY))
        )
        reasons = text.split("理由 Reasons\n", 1)[1]
        assert reasons.index("material:bank_account") < reasons.index("Also matched")
        assert reasons.index("Also matched") < reasons.index("[eligible]")


# -- the remedies notice ------------------------------------------------------------------------


class TestRemediesNotice:
    def test_every_shipped_refusal_names_its_bodies(self, catalog):
        """District departments take the directory's default; the city department's item
        names its own bodies in its rule file."""
        cases = [
            ("GF00012000", SENIOR, WITHOUT_BANK, NANHAI),
            ("XK00051000", BUSINESS, BUSINESS_MATERIALS[:1], NANHAI),
            (
                "BA00027000",
                DEVICE,
                DEVICE_MATERIALS[:1],
                ("佛山市人民政府", "佛山市禅城区人民法院"),
            ),
        ]
        for code, facts, materials, (body, court) in cases:
            d = catalog.decide(code, facts, materials, TODAY)
            assert d.outcome == "REJECT", code
            r = d.remedies
            assert r is not None
            assert (r.review_body, r.review_days, r.court, r.litigation_months) == (
                body,
                60,
                court,
                6,
            )
            assert f"60日内向{body}申请行政复议" in r.notice
            assert f"6个月内向{court}提起行政诉讼" in r.notice
            assert [b.citation for b in r.basis] == [
                "《中华人民共和国行政许可法》第三十八条",
                "《中华人民共和国行政复议法》第二十条",
                "《中华人民共和国行政诉讼法》第四十六条",
            ]

    def test_no_notice_unless_refused(self, catalog):
        approved = catalog.decide("GF00012000", SENIOR, SENIOR_MATERIALS, TODAY)
        assert (approved.outcome, approved.remedies) == ("APPROVE", None)
        old = with_facts(SENIOR, applicant__id_number=resident_id("1920-01-01"))
        reviewed = catalog.decide("GF00012000", old, SENIOR_MATERIALS, TODAY)
        assert (reviewed.outcome, reviewed.remedies) == ("MANUAL_REVIEW", None)

    def test_over_grpc_recorded_and_verifiable(self, stub):
        """The notice is in the Decide answer and in the recorded decision JSON, whose receipt
        verifies: the record proves what the citizen was told."""
        d = stub.Decide(decide_request("GF00012000", SENIOR, WITHOUT_BANK)).decision
        assert d.outcome == pb.OUTCOME_REJECT
        assert (d.remedies.review_body, d.remedies.court) == NANHAI
        assert (d.remedies.review_days, d.remedies.litigation_months) == (60, 6)
        assert "佛山市南海区人民法院提起行政诉讼" in d.remedies.notice
        got = stub.GetDecision(pb.GetDecisionRequest(decision_id=d.decision_id)).decision
        assert got.remedies == d.remedies
        public = stub.GetSealKey(pb.GetSealKeyRequest()).public_key
        saved = json_format.MessageToDict(got, preserving_proto_field_name=True)
        assert verify_receipt(saved, public).ok
        saved["remedies"]["court"] = "别的法院"
        assert not verify_receipt(saved, public).ok
        approved = stub.Decide(decide_request("GF00012000", SENIOR, SENIOR_MATERIALS)).decision
        assert not approved.HasField("remedies")

    def test_get_item_shows_the_bodies(self, stub):
        item = stub.GetItem(pb.GetItemRequest(item_code="BA00027000")).item
        assert (item.remedies.review_body, item.remedies.court) == (
            "佛山市人民政府",
            "佛山市禅城区人民法院",
        )
        assert (item.remedies.review_days, item.remedies.litigation_months) == (60, 6)
        item = stub.GetItem(pb.GetItemRequest(item_code="GF00012000")).item
        assert (item.remedies.review_body, item.remedies.court) == NANHAI

    def test_clerk_prints_the_notice(self, catalog):
        text = render.decision(
            wire_decision(catalog.decide("GF00012000", SENIOR, WITHOUT_BANK, TODAY))
        )
        assert "救济途径 Remedies" in text
        assert "向佛山市南海区人民政府申请行政复议" in text
        approved = catalog.decide("GF00012000", SENIOR, SENIOR_MATERIALS, TODAY)
        assert "救济途径" not in render.decision(wire_decision(approved))


# -- where the bodies come from -----------------------------------------------------------------

REFUSING = rule_file("""\
    form:
      p.age: {type: integer, label: 年龄, required: true}
    rules:
      - {id: young, when: p.age < 18, outcome: REJECT, message: 未成年, basis: art1}
      - {id: ok, when: p.age >= 18, outcome: APPROVE, message: 可以, basis: art1}
    """)
DEPARTMENT = """\
departments:
  测试局:
    remedies: {review_body: 测试区人民政府, court: 测试区人民法院}
"""


def _rules(tmp_path: Path, item: str, departments: str | None = None) -> Path:
    root = tmp_path / "rules"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    (root / "t.yaml").write_text(item, encoding="utf-8")
    if departments is not None:
        (root / "departments").mkdir()
        (root / "departments" / "d.yaml").write_text(departments, encoding="utf-8")
    return root


def _refusal(root: Path) -> Any:
    catalog = load_catalog(root)
    try:
        return catalog.decide("T0001", {"p": {"age": 10}}, [], TODAY)
    finally:
        catalog.close()


class TestWhereBodiesComeFrom:
    def test_department_default(self, tmp_path):
        r = _refusal(_rules(tmp_path, REFUSING, DEPARTMENT)).remedies
        assert (r.review_body, r.court) == ("测试区人民政府", "测试区人民法院")
        assert lint_directory(tmp_path / "rules") == []

    def test_rule_file_overrides_each_body_it_names(self, tmp_path):
        item = REFUSING + "remedies: {court: 测试市铁路运输法院}\n"
        r = _refusal(_rules(tmp_path, item, DEPARTMENT)).remedies
        assert (r.review_body, r.court) == ("测试区人民政府", "测试市铁路运输法院")

    def test_department_default_is_part_of_the_digest(self, tmp_path):
        """A decision names the digest of what it was made under: changing the department's
        court changes it; the rule file alone gives another digest again."""
        digests = []
        for departments in (DEPARTMENT, DEPARTMENT.replace("测试区人民法院", "另一法院"), None):
            [c], _ = compile_directory(_rules(tmp_path, REFUSING, departments))
            digests.append(c.item.digest)
        assert len(set(digests)) == 3

    def test_none_configured_is_mp360_but_the_notice_stands(self, tmp_path):
        """Lint refuses an item that can refuse without bodies (the server still loads it, and
        its refusals still tell the applicant of both rights)."""
        root = _rules(tmp_path, REFUSING)
        [d] = lint_directory(root)
        assert (d.code, d.severity, d.line) == ("MP360", "error", 6)  # at item.department
        assert "review_body" in d.message and "court" in d.message and "测试局" in d.message
        r = _refusal(root).remedies
        assert (r.review_body, r.court) == ("", "")
        assert "有管辖权的行政复议机关" in r.notice and "有管辖权的人民法院" in r.notice

    def test_one_body_missing_names_it(self, tmp_path):
        root = _rules(tmp_path, REFUSING + "remedies: {review_body: 测试区人民政府}\n")
        [d] = lint_directory(root)
        assert (d.code, d.line) == ("MP360", 16)  # at remedies:
        assert "缺少 court（人民法院）：" in d.message

    def test_an_item_that_cannot_refuse_needs_none(self, tmp_path):
        item = REFUSING.replace("outcome: REJECT", "outcome: MANUAL_REVIEW")
        assert lint_directory(_rules(tmp_path, item)) == []

    def test_a_required_material_can_refuse(self, tmp_path):
        item = REFUSING.replace("outcome: REJECT", "outcome: MANUAL_REVIEW").replace(
            "rules:\n",
            "materials:\n  - {id: form, name: 申请表, need: required}\n"
            "materials_basis: art1\nrules:\n",
        )
        assert [d.code for d in lint_directory(_rules(tmp_path, item))] == ["MP360"]

    def test_department_twice_and_bad_keys(self, tmp_path):
        root = _rules(tmp_path, REFUSING, DEPARTMENT)
        (root / "departments" / "e.yaml").write_text(
            DEPARTMENT
            + "  其他局:\n    remedies: {reviewer: 某某}\n"
            + "  第三局:\n    remedies: {review_body: 2024, court: 某法院}\n",
            encoding="utf-8",
        )
        found = {(d.code, d.line) for d in lint_directory(root)}
        # defined twice; an unknown key; unquoted text (the schema checks department files)
        assert found == {("MP104", 2), ("MP102", 5), ("MP150", 7)}

    def test_cli_lint_json(self, tmp_path, capsys):
        root = _rules(tmp_path, REFUSING)
        assert main(["rules", "lint", str(root), "--json"]) == 1
        [d] = json.loads(capsys.readouterr().out)
        assert d["code"] == "MP360"

    def test_shipped_set_is_clean_and_has_a_department_file(self):
        assert (RULESETS / "departments").is_dir()
        assert lint_directory(RULESETS) == []
