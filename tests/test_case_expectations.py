"""What a case file can assert beyond the shared format (rules fired, exact and absent
outputs, the findings about shared data), and that an expectation which checks nothing is a
failing rule test, not a pass."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from miaopi_client.cases import checks_nothing, compare, load_cases
from miaopi_client.cli import main
from miaopi_client.client import CaseFileError
from miaopi_client.replay import replay_file
from tests.support import RULESETS, SENIOR, SENIOR_FILE, SENIOR_MATERIALS, sourced_senior_rule

TODAY = "2026-11-23"
SENIOR_CASES = "GF00012000-senior-allowance.cases.jsonl"
# SENIOR is 76 on AS_OF: rules `eligible` fires, monthly_amount 30.
APPROVED = {
    "outcome": "APPROVE",
    "outputs": {"monthly_amount": 30.0},
    "reasons": [{"rule_id": "eligible"}],
}
REJECTED = {
    "outcome": "REJECT",
    "missing_materials": [{"id": "bank_account"}],
    "reasons": [{"rule_id": "eligible"}, {"rule_id": "material:bank_account"}],
}
# The same case sent to review because the population registry disagrees on the hukou.
CONFLICT = {
    "outcome": "MANUAL_REVIEW",
    "outputs": {"monthly_amount": 30.0},
    "reasons": [{"rule_id": "data:conflict:applicant.hukou_region"}, {"rule_id": "eligible"}],
}


def case_line(case_id: str, expected: dict[str, Any], materials: list[str] | None = None) -> str:
    line = {
        "case_id": case_id,
        "item_code": "GF00012000",
        "facts": SENIOR,
        "materials": SENIOR_MATERIALS if materials is None else materials,
        "expected": expected,
    }
    return json.dumps(line, ensure_ascii=False)


def rules_with(tmp_path: Path, *lines: str) -> Path:
    """The shipped rules and their window cases (not those on recorded lookups), plus
    `lines` in the senior allowance's case file."""
    root = tmp_path / "rules"
    shutil.copytree(RULESETS, root, ignore=shutil.ignore_patterns("*.sourced.cases.jsonl"))
    with (root / SENIOR_CASES).open("a", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))
    return root


class TestCompare:
    @pytest.mark.parametrize(
        ("expected", "decision", "mismatches"),
        [
            ({"rules_fired": ["eligible"]}, APPROVED, []),
            # the materials notice is not a policy rule: rules_fired is about the rules
            ({"rules_fired": ["eligible"]}, REJECTED, []),
            (
                {"rules_fired": ["under_70"]},
                APPROVED,
                ["rules_fired: expected ['under_70'], got ['eligible']; did not fire: "
                 "under_70; also fired: eligible"],
            ),
            ({"rules_fired_includes": ["eligible"]}, APPROVED, []),
            (
                {"rules_fired_includes": ["eligible", "deceased"]},
                APPROVED,
                ["rules_fired_includes: did not fire: deceased"],
            ),
            ({"rules_fired_excludes": ["deceased"]}, APPROVED, []),
            (
                {"rules_fired_excludes": ["eligible"]},
                APPROVED,
                ["rules_fired_excludes: fired: eligible"],
            ),
            ({"outputs_exact": {"monthly_amount": 30}}, APPROVED, []),
            ({"outputs_exact": {}}, REJECTED, []),
            (
                {"outputs_exact": {}},
                APPROVED,
                ["outputs.monthly_amount: not expected, got 30"],
            ),
            (
                {"outputs_absent": ["monthly_amount"]},
                APPROVED,
                ["outputs.monthly_amount: expected absent, got 30"],
            ),
            ({"outputs_absent": ["monthly_amount"]}, REJECTED, []),
            # findings about shared data are not policy rules: data_reasons checks them
            ({"rules_fired": ["eligible"]}, CONFLICT, []),
            ({"data_reasons": ["data:conflict:applicant.hukou_region"]}, CONFLICT, []),
            ({"data_reasons": []}, APPROVED, []),
            (
                {"data_reasons": []},
                CONFLICT,
                ["data_reasons: expected [], got ['data:conflict:applicant.hukou_region']; "
                 "also given: data:conflict:applicant.hukou_region"],
            ),
            (
                {"data_reasons": ["data:unavailable:population"]},
                CONFLICT,
                ["data_reasons: expected ['data:unavailable:population'], got "
                 "['data:conflict:applicant.hukou_region']; not given: "
                 "data:unavailable:population; also given: data:conflict:applicant.hukou_region"],
            ),
        ],
    )  # fmt: skip
    def test_expectation(self, expected, decision, mismatches):
        assert compare(expected, decision["outcome"], decision) == mismatches

    def test_an_error_answer_has_none_of_them(self):
        """INVALID_ARGUMENT carries no decision: every decision check is reported unchecked."""
        got = compare({"outcome": "INVALID_ARGUMENT", "rules_fired": []}, "INVALID_ARGUMENT", None)
        assert got == ["rules_fired: expected, but INVALID_ARGUMENT has no decision"]
        got = compare({"data_reasons": []}, "INVALID_ARGUMENT", None)
        assert got == ["data_reasons: expected, but INVALID_ARGUMENT has no decision"]


class TestVacuousExpectations:
    @pytest.mark.parametrize(
        "expected",
        [{}, {"outputs": {}}, {"rules_fired_includes": []}, {"outputs_absent": []}],
    )
    def test_checks_that_cannot_fail_are_named(self, expected):
        assert checks_nothing(expected)

    @pytest.mark.parametrize(
        "expected",
        [{"outcome": "APPROVE"}, {"outputs_exact": {}}, {"rules_fired": []},
         {"missing_materials": []}, {"outputs": {"monthly_amount": 30}}, {"data_reasons": []}],
    )  # fmt: skip
    def test_real_checks_pass_the_guard(self, expected):
        assert checks_nothing(expected) == []

    def test_rules_test_fails_a_case_expecting_empty_outputs(self, tmp_path, capsys):
        """The red team's case: `"outputs": {}` passed while the real amount was set. As an
        author's test it now fails, saying why."""
        root = rules_with(tmp_path, case_line("vacuous", {"outputs": {}}))
        assert main(["rules", "test", str(root), "--today", TODAY]) == 1
        out = capsys.readouterr().out
        assert "expected.outputs is empty and checks nothing" in out
        assert "失败 FAILED" in out

    def test_rules_test_fails_a_case_naming_an_unknown_rule(self, tmp_path, capsys):
        root = rules_with(tmp_path, case_line("typo", {"rules_fired_excludes": ["eligable"]}))
        assert main(["rules", "test", str(root), "--today", TODAY]) == 1
        assert "expected names no rule of this item: eligable" in capsys.readouterr().out

    def test_a_data_reason_among_the_rules_says_where_it_belongs(self, tmp_path, capsys):
        root = rules_with(tmp_path, case_line("misplaced", {"rules_fired_excludes": [
            "data:conflict:applicant.hukou_region"]}))  # fmt: skip
        assert main(["rules", "test", str(root), "--today", TODAY]) == 1
        assert (
            "expected names no rule of this item: data:conflict:applicant.hukou_region "
            "(data: reasons are checked by expected.data_reasons)"
        ) in capsys.readouterr().out

    def test_replay_keeps_the_shared_format(self, tmp_path):
        """Replay (external regression suites) still takes `outputs: {}` as the shared format
        defines it: listed values must match, so an empty list passes."""
        path = tmp_path / "cases.jsonl"
        path.write_text(case_line("shared-format", {"outputs": {}}) + "\n", encoding="utf-8")
        report = replay_file(path, RULESETS)
        assert report.failed == 0


class TestRulesTestReport:
    def test_reports_what_each_item_checks(self, tmp_path, capsys):
        """The report counts, per item, the cases using each check."""
        root = rules_with(
            tmp_path,
            case_line("fired", {"outcome": "APPROVE", "rules_fired": ["eligible"]}),
            case_line(
                "absent",
                {"outcome": "REJECT", "outputs_absent": ["monthly_amount"]},
                materials=["id_card", "hukou_book"],
            ),
        )
        assert main(["rules", "test", str(root), "--today", TODAY, "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        senior = next(i for i in report["items"] if i["item_code"] == "GF00012000")
        assert senior["checks"]["rules_fired"] == 1
        assert senior["checks"]["outputs_absent"] == 1
        assert senior["checks"]["outcome"] >= 2
        assert main(["rules", "test", str(root), "--today", TODAY]) == 0
        assert "rules_fired 1" in capsys.readouterr().out

    def test_replay_checks_rules_fired_in_process(self, tmp_path):
        """The lean in-process path of replay carries the reasons' rule ids."""
        path = tmp_path / "cases.jsonl"
        path.write_text(
            case_line("ok", {"rules_fired": ["eligible"]}) + "\n"
            + case_line("wrong", {"rules_fired": ["deceased"]}) + "\n",
            encoding="utf-8",
        )  # fmt: skip
        report = replay_file(path, RULESETS)
        assert [r.passed for r in report.results] == [True, False]


class TestCaseFileFormat:
    @pytest.mark.parametrize(
        ("expected", "problem"),
        [
            ({"rules_fired": "eligible"}, "expected.rules_fired must be a list of ids"),
            ({"outputs_exact": []}, "expected.outputs_exact must be a JSON object"),
            ({"outputs": {}, "outputs_exact": {}}, "not both"),
            ({"data_reasons": "data:conflict:x"}, "expected.data_reasons must be a list of ids"),
            (
                {"data_reasons": ["data:no_record:population", "eligible", "conflict"]},
                "expected.data_reasons: not a data: reason: eligible, conflict",
            ),
        ],
    )
    def test_malformed_expectations_are_refused(self, tmp_path, expected, problem):
        path = tmp_path / "cases.jsonl"
        path.write_text(case_line("bad", expected) + "\n", encoding="utf-8")
        with pytest.raises(CaseFileError, match=problem):
            load_cases(path)


PERSON = {"name": "陈建国", "id_number": "440605195003011231"}  # 76 on 2026-11-20


class TestDataReasons:
    """`rules test` runs a case on the lookups it carries (`sourced`) and checks the data:
    reasons they give, with no source to call."""

    CONSENT = "授权书-测试-001"

    def lookup(self, status: str, **more: Any) -> dict[str, Any]:
        return {
            "source": "population",
            "key_path": "applicant.id_number",
            "status": status,
            "key": PERSON["id_number"],
            **more,
        }

    def case(self, case_id: str, lookup: dict[str, Any], expected: dict[str, Any]) -> str:
        return json.dumps(
            {
                "case_id": case_id,
                "item_code": "GF00012000",
                "facts": {
                    "applicant": {**PERSON, "hukou_region": "440605", "deceased": False},
                    "application": {"date": "2026-11-20"},
                },
                "materials": SENIOR_MATERIALS,
                "sourced": {
                    "consent": self.CONSENT,
                    "lookups": [lookup],
                    "licences": {"status": "found"},
                },
                "expected": expected,
            },
            ensure_ascii=False,
        )

    def run(self, tmp_path: Path, capsys: Any, missing: str, *lines: str) -> dict[str, Any]:
        root = tmp_path / "rules"
        shutil.copytree(RULESETS, root, ignore=shutil.ignore_patterns("*.jsonl"))
        (root / SENIOR_FILE).write_text(sourced_senior_rule(missing=missing), encoding="utf-8")
        (root / "sourced.cases.jsonl").write_text("".join(x + "\n" for x in lines), "utf-8")
        main(["rules", "test", str(root), "--today", TODAY, "--json"])
        report = json.loads(capsys.readouterr().out)
        return next(i for i in report["items"] if i["item_code"] == "GF00012000")

    def test_each_kind_of_finding_is_asserted(self, tmp_path, capsys):
        found = self.lookup(
            "found",
            record_id="P-T-1",
            values={"hukou_region": "440604", "deceased": False},
            fetched_at="2026-11-20T01:30:00Z",
        )
        review = {"outcome": "MANUAL_REVIEW", "rules_fired": ["eligible"]}
        senior = self.run(
            tmp_path,
            capsys,
            "manual_review",
            self.case("conflict", found, {
                **review, "data_reasons": ["data:conflict:applicant.hukou_region"]}),
            self.case("no-record", self.lookup("no_record"), {
                **review, "data_reasons": ["data:no_record:population"]}),
            self.case("unavailable", self.lookup("unavailable", reason="超时（0.2 秒内无答复）"), {
                **review, "data_reasons": ["data:unavailable:population"]}),
        )  # fmt: skip
        assert (senior["passed"], senior["failed"]) == (3, 0), senior["failures"]
        assert senior["checks"]["data_reasons"] == 3

    def test_a_wrong_finding_fails_the_case(self, tmp_path, capsys):
        """The same missing record under `use_window` gives no finding: a case expecting one
        fails, naming what was and was not given."""
        senior = self.run(
            tmp_path,
            capsys,
            "use_window",
            self.case("no-record", self.lookup("no_record"), {
                "outcome": "APPROVE", "data_reasons": ["data:no_record:population"]}),
            self.case("no-record-none", self.lookup("no_record"), {
                "outcome": "APPROVE", "data_reasons": []}),
        )  # fmt: skip
        assert senior["passed"] == 1
        ((failure),) = senior["failures"]
        assert failure["case_id"] == "no-record"
        assert failure["mismatches"] == [
            "data_reasons: expected ['data:no_record:population'], got []; "
            "not given: data:no_record:population"
        ]
