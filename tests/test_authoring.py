"""Rule-author tools: `miaopi rules test | explain | diff`, explain(), and replay reports
(JUnit XML, per-item table, progress bar). Everything runs in-process on the real engine."""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import random
import shutil
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from miaopi_client import render
from miaopi_client.authoring_tools import run_rules_diff, wire_facts
from miaopi_client.cases import load_cases
from miaopi_client.cli import main
from miaopi_server.decision.catalog import Catalog, load_catalog
from miaopi_server.decision.explain import explain, split_top_level, unparse
from miaopi_server.errors import CaseInvalid, ItemNotFound
from miaopi_server.lang.parser import parse
from miaopi_server.lang.probes import MISSING
from miaopi_server.rules.identity import resident_id_check_char
from tests.support import (
    AS_OF,
    RULESETS,
    SENIOR,
    SENIOR_FILE,
    SENIOR_MATERIALS,
    resident_id,
    with_facts,
)

TODAY = "2026-11-23"
TODAY_DATE = dt.date.fromisoformat(TODAY)
SENIOR_CASES = "GF00012000-senior-allowance.cases.jsonl"
SENIOR_RULES = [
    "under_70",
    "not_local_hukou",
    "deceased",
    "already_receiving",
    "very_old_verify",
    "eligible",
]


SENIOR_SOURCED = "GF00012000-senior-allowance.sourced.cases.jsonl"


def shipped_cases() -> list[dict[str, Any]]:
    """The shipped cases that decide on their own facts (those on recorded lookups, in the
    *.sourced.cases.jsonl files, are tests/test_sources_cases.py's)."""
    return [
        c
        for path in sorted(RULESETS.glob("*.jsonl"))
        for c in map(json.loads, path.read_text(encoding="utf-8").splitlines())
        if "sourced" not in c
    ]


def write_jsonl(path: Path, cases: list[dict[str, Any]]) -> Path:
    path.write_text(
        "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases), encoding="utf-8"
    )
    return path


def copy_rules(tmp_path: Path, name: str = "rules") -> Path:
    root = tmp_path / name
    shutil.copytree(RULESETS, root)
    return root


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")


def senior_v2(root: Path) -> Path:
    """The senior allowance with the 80-89 band raised to 120 and 440604 (a merged township)
    treated as local hukou."""
    path = root / SENIOR_FILE
    edit(path, 'version: "2024.1"', 'version: "2024.2"')
    edit(path, "{when: applicant.age >= 80, value: 100}", "{when: applicant.age >= 80, value: 120}")
    edit(
        path,
        'when: applicant.hukou_region != "440605"',
        'when: applicant.hukou_region not in ["440605", "440604"]',
    )
    edit(
        path,
        'when: applicant.age >= 70 and applicant.hukou_region == "440605"',
        'when: applicant.age >= 70 and applicant.hukou_region in ["440605", "440604"]',
    )
    return root


@pytest.fixture(scope="module")
def cat() -> Any:
    c = load_catalog(RULESETS)
    yield c
    c.close()


# -- rules test


class TestRulesTest:
    def test_shipped_rulesets_cover_every_rule(self, capsys: pytest.CaptureFixture[str]) -> None:
        args = ["rules", "test", str(RULESETS), "--today", TODAY, "--min-coverage", "100"]
        assert main([*args, "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["ok"] and report["failed"] == 0
        assert [i["item_code"] for i in report["items"]] == [
            "BA00027000",
            "GF00012000",
            "GF00034001",
            "XK00051000",
        ]
        for item in report["items"]:
            assert item["cases"] > 0 and item["failed"] == 0, item["item_code"]
            assert item["unexercised"] == [], item["item_code"]
            assert item["coverage"] == 100.0
        senior = next(i for i in report["items"] if i["item_code"] == "GF00012000")
        assert senior["exercised"] == SENIOR_RULES
        assert senior["case_files"] == [
            str(RULESETS / SENIOR_CASES),
            str(RULESETS / SENIOR_SOURCED),
        ]

        assert main(args) == 0
        out = capsys.readouterr().out
        assert "GF00012000  高龄老人津贴申领" in out
        assert "100.0% (6/6)" in out and "通过 OK" in out

    def test_a_failing_case_exits_1(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        root = copy_rules(tmp_path)
        wrong = {
            "case_id": "senior-wrong",
            "item_code": "GF00012000",
            "facts": SENIOR,
            "materials": SENIOR_MATERIALS,
            "expected": {"outcome": "APPROVE", "outputs": {"monthly_amount": 999}},
        }
        cases = root / SENIOR_CASES
        with cases.open("a", encoding="utf-8") as f:
            f.write(json.dumps(wrong, ensure_ascii=False) + "\n")
        assert main(["rules", "test", str(root), "--today", TODAY]) == 1
        out = capsys.readouterr().out
        assert f"senior-wrong ({cases}:12, GF00012000)" in out
        assert "outputs.monthly_amount: expected 999, got 30" in out
        assert "失败 FAILED" in out

    def test_min_coverage(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        root = copy_rules(tmp_path)
        (root / SENIOR_SOURCED).unlink()  # its cases exercise `deceased` too
        cases = root / SENIOR_CASES
        kept = [
            line
            for line in cases.read_text(encoding="utf-8").splitlines()
            if '"senior-reject-deceased"' not in line
        ]
        cases.write_text("\n".join(kept) + "\n", encoding="utf-8")

        assert main(["rules", "test", str(root), "--today", TODAY, "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        senior = next(i for i in report["items"] if i["item_code"] == "GF00012000")
        assert senior["unexercised"] == ["deceased"]
        assert senior["rules_exercised"] == 5 and senior["rules_total"] == 6
        assert senior["coverage"] == pytest.approx(83.33)

        assert main(["rules", "test", str(root), "--today", TODAY, "--min-coverage", "80"]) == 0
        capsys.readouterr()
        assert main(["rules", "test", str(root), "--today", TODAY, "--min-coverage", "90"]) == 1
        out = capsys.readouterr().out
        assert "GF00012000: deceased" in out
        assert "未达 below: GF00012000" in out

    def test_failing_case_does_not_count_for_coverage(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        root = copy_rules(tmp_path)
        (root / SENIOR_SOURCED).unlink()  # its cases exercise `deceased` too
        edit(
            root / SENIOR_CASES,
            '"hukou_region": "440605", "deceased": true}, "application": {"date": "2026-11-20"}}, '
            '"materials": ["id_card", "hukou_book", "bank_account"], '
            '"expected": {"outcome": "REJECT"}}',
            '"hukou_region": "440605", "deceased": true}, "application": {"date": "2026-11-20"}}, '
            '"materials": ["id_card", "hukou_book", "bank_account"], '
            '"expected": {"outcome": "APPROVE"}}',
        )
        assert main(["rules", "test", str(root), "--today", TODAY, "--json"]) == 1
        senior = next(
            i
            for i in json.loads(capsys.readouterr().out)["items"]
            if i["item_code"] == "GF00012000"
        )
        assert senior["failed"] == 1 and senior["unexercised"] == ["deceased"]

    def test_versions_and_cases_in_subfolders(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Each version's cases sit next to its own file; with several versions a rule is
        named rule@version."""
        root = tmp_path / "rules"
        (root / "senior").mkdir(parents=True)
        shutil.copytree(RULESETS / "lists", root / "lists")
        old = root / "senior" / SENIOR_FILE
        shutil.copy(RULESETS / SENIOR_FILE, old)
        edit(old, 'version: "2024.1"\n', 'version: "2024.1"\neffective_until: 2026-12-31\n')
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        shutil.copy(RULESETS / SENIOR_FILE, scratch / SENIOR_FILE)
        new = root / "senior" / "v2.yaml"
        new.write_text(
            (senior_v2(scratch) / SENIOR_FILE)
            .read_text("utf-8")
            .replace('version: "2024.2"\n', 'version: "2024.2"\neffective_from: 2027-01-01\n'),
            "utf-8",
        )
        shutil.copy(RULESETS / SENIOR_CASES, root / "senior" / "senior.cases.jsonl")
        assert main(["rules", "test", str(root), "--today", TODAY, "--json"]) == 0
        (item,) = json.loads(capsys.readouterr().out)["items"]
        assert item["versions"] == ["2024.1", "2024.2"]
        assert item["passed"] == 11
        # all shipped cases are dated 2026-11-20: only 2024.1 is exercised
        assert item["unexercised"] == [f"{r}@2024.2" for r in SENIOR_RULES]
        assert item["coverage"] == 50.0

    def test_item_without_cases(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        root = copy_rules(tmp_path)
        (root / SENIOR_CASES).unlink()
        (root / SENIOR_SOURCED).unlink()
        assert main(["rules", "test", str(root), "--today", TODAY]) == 0
        out = capsys.readouterr().out
        assert "0.0% (0/6)" in out and "GF00012000: 没有案例 no cases" in out
        assert main(["rules", "test", str(root), "--today", TODAY, "--min-coverage", "1"]) == 1

    def test_bad_rules_exit_2(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        root = copy_rules(tmp_path)
        edit(root / SENIOR_FILE, "when: applicant.age < 70", "when: applicant.age <")
        assert main(["rules", "test", str(root)]) == 2
        assert "failed to load" in capsys.readouterr().err

    def test_bad_coverage_argument(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["rules", "test", str(RULESETS), "--min-coverage", "101"]) == 2


# -- explain

REJECT_FACTS = with_facts(SENIOR, applicant__hukou_region="440604")  # 76 years old, not local


class TestExplain:
    def test_matched_comes_from_the_engine(self, cat: Catalog) -> None:
        facts = wire_facts(REJECT_FACTS)
        e = explain(cat, "GF00012000", facts, SENIOR_MATERIALS, TODAY_DATE)
        d = cat.decide("GF00012000", facts, SENIOR_MATERIALS, TODAY_DATE)
        assert e.outcome == d.outcome == "REJECT"
        assert [r.rule_id for r in e.rules] == SENIOR_RULES
        assert {r.rule_id for r in e.rules if r.matched} == {"not_local_hukou"}
        assert {f"r:{r.rule_id}" for r in e.rules if r.matched} == {
            f for f in d.fired if f.startswith("r:")
        }
        eligible = e.rules[-1]
        assert eligible.condition.connective == "and"
        assert [(p.source, p.held) for p in eligible.condition.parts] == [
            ("applicant.age >= 70", True),
            ('applicant.hukou_region == "440605"', False),
        ]
        assert dict(eligible.condition.facts_read) == {
            "applicant.age": 76,
            "applicant.hukou_region": "440604",
        }
        assert e.disagreements == []
        outputs = [(o.index, o.matched, o.selected) for o in e.outputs]
        assert outputs == [
            (0, False, False),
            (1, False, False),
            (2, False, False),
            (3, True, False),
        ]

    def test_every_shipped_case_agrees_with_the_engine(self, cat: Catalog) -> None:
        """Reference semantics of whole conditions agree with what fired, and the rules that
        matched are exactly the decision's policy reasons."""
        explained = 0
        for c in shipped_cases():
            facts = wire_facts(c["facts"])
            try:
                e = explain(cat, c["item_code"], facts, c["materials"], TODAY_DATE)
            except (CaseInvalid, ItemNotFound):
                assert c["expected"]["outcome"] in ("INVALID_ARGUMENT", "NOT_FOUND")
                continue
            explained += 1
            assert e.disagreements == [], c["case_id"]
            reasons = {r.rule_id for r in e.decision.reasons}
            assert {r.rule_id for r in e.rules if r.matched} == reasons - {
                "no_rule_matched",
                *(f"material:{m.material_id}" for m in e.materials),
            }
            assert e.outcome == c["expected"]["outcome"], c["case_id"]
            selected = {o.output: o.value for o in e.outputs if o.selected}
            if e.outcome != "REJECT":
                assert selected == e.decision.outputs
        assert explained == 50

    def test_missing_values_and_negated_parts(self, cat: Catalog) -> None:
        device = next(c for c in shipped_cases() if c["case_id"] == "device-approve")
        facts = copy.deepcopy(device["facts"])
        facts["warehouse"] = {"outsourced": False}  # no area given
        e = explain(cat, "BA00027000", wire_facts(facts), device["materials"], TODAY_DATE)
        small = next(r for r in e.rules if r.rule_id == "warehouse_too_small")
        assert small.matched and e.outcome == "REJECT"
        assert dict(small.condition.facts_read)["warehouse.area_sqm"] is MISSING
        assert [(p.source, p.held) for p in small.condition.parts] == [
            ("not warehouse.outsourced", True),
            ("(warehouse.area_sqm is missing or warehouse.area_sqm < 20)", True),
        ]
        eligible = next(r for r in e.rules if r.rule_id == "eligible")
        assert len(eligible.condition.parts) == 7 and not eligible.matched
        assert [p.held for p in eligible.condition.parts] == [True] * 4 + [False, True, True]
        as_json = e.to_dict()
        read = next(r for r in as_json["rules"] if r["rule_id"] == "warehouse_too_small")
        assert {"path": "warehouse.area_sqm", "missing": True} in read["facts_read"]

    def test_errors_are_those_of_decide(self, cat: Catalog) -> None:
        with pytest.raises(ItemNotFound):
            explain(cat, "NOPE", SENIOR, [], TODAY_DATE)
        with pytest.raises(CaseInvalid):
            explain(cat, "GF00012000", with_facts(SENIOR, applicant__name=None), [], TODAY_DATE)

    def test_cli_reject_case(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        facts = tmp_path / "facts.json"
        facts.write_text(json.dumps(REJECT_FACTS, ensure_ascii=False), encoding="utf-8")
        args = ["rules", "explain", str(RULESETS), "--item", "GF00012000", "--facts", str(facts)]
        assert main([*args, "--materials", ",".join(SENIOR_MATERIALS), "--today", TODAY]) == 0
        out = capsys.readouterr().out
        lines = out.splitlines()
        marks = {}
        for rule in SENIOR_RULES:
            line = next(x for x in lines if x.startswith(("  ✓ ", "  ✗ ")) and f" {rule} " in x)
            marks[rule] = line[2]
        assert marks == {
            "under_70": "✗",
            "not_local_hukou": "✓",
            "deceased": "✗",
            "already_receiving": "✗",
            "very_old_verify": "✗",
            "eligible": "✗",
        }
        assert "读取 Read: applicant.age=76" in out
        assert "读取 Read: applicant.hukou_region=440604" in out
        assert "读取 Read: applicant.deceased=false" in out
        assert "✓ applicant.age >= 70" in out and '✗ applicant.hukou_region == "440605"' in out
        assert "仅供解释 explanation only" in out
        assert "结果 Outcome: 不予批准 REJECT" in out
        assert "理由 Reasons: not_local_hukou" in out

        assert main([*args, "--materials", "id_card", "--today", TODAY, "--json"]) == 0
        e = json.loads(capsys.readouterr().out)
        assert e["decision"]["missing_materials"] == ["hukou_book", "bank_account"]
        assert [m["matched"] for m in e["materials"]] == [False, True, True, False, False]

    def test_cli_errors(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        facts = tmp_path / "facts.json"
        facts.write_text(json.dumps(with_facts(SENIOR, applicant__name=None)), encoding="utf-8")
        base = ["rules", "explain", str(RULESETS), "--facts", str(facts)]
        assert main([*base, "--item", "GF00012000"]) == 2
        assert "facts.applicant.name" in capsys.readouterr().err
        assert main([*base, "--item", "NOPE"]) == 3
        facts.write_text("[1]", encoding="utf-8")
        assert main([*base, "--item", "GF00012000"]) == 2
        assert "must be a JSON object" in capsys.readouterr().err

    @pytest.mark.parametrize(
        "source",
        [
            "a and b",
            "not a and (b or c < 3)",
            'not (x in [1, 2] or y starts with any of ["南海", "x"])',
            'any s.scope not in list l and t contains "ivd"',
            "(a and b) or (c and not d) or e is missing",
        ],
    )
    def test_split_and_unparse(self, source: str) -> None:
        tree = parse(source)
        assert parse(unparse(tree)) == parse(unparse(parse(unparse(tree))))
        node = tree.operand if hasattr(tree, "operand") else tree
        keyword = "and" if type(node).__name__ == "And" else "or"
        parts = split_top_level(source, keyword, len(node.operands))
        assert None not in parts
        for text, op in zip(parts, node.operands, strict=True):
            assert unparse(parse(text)) == unparse(op)


# -- diff


def senior_grid() -> list[dict[str, Any]]:
    """72 senior cases: 6 ages x 2 birthdays x 3 hukou regions x deceased or not."""
    out = []
    for age in (65, 75, 85, 95, 102, 106):
        exact = dt.date.fromisoformat(AS_OF).replace(year=2026 - age)
        for birth in (exact, exact - dt.timedelta(days=100)):
            for hukou in ("440605", "440604", "440606"):
                for deceased in (False, True):
                    facts = with_facts(
                        SENIOR,
                        applicant__id_number=resident_id(birth.isoformat()),
                        applicant__hukou_region=hukou,
                        applicant__deceased=deceased,
                    )
                    out.append(
                        {
                            "case_id": f"grid-{age}-{birth}-{hukou}-{int(deceased)}",
                            "item_code": "GF00012000",
                            "facts": facts,
                            "materials": SENIOR_MATERIALS,
                            "expected": {},
                        }
                    )
    return out


def diff_cases(tmp_path: Path) -> Path:
    extra = {
        "case_id": "unknown-item",
        "item_code": "ZZ00000000",
        "facts": {},
        "materials": [],
        "expected": {},
    }
    return write_jsonl(tmp_path / "diff.jsonl", [*senior_grid(), *shipped_cases(), extra])


class TestDiff:
    def test_band_and_hukou_change(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        new = senior_v2(copy_rules(tmp_path, "new"))
        cases = diff_cases(tmp_path)
        args = ["rules", "diff", str(RULESETS), str(new), "--cases", str(cases), "--today", TODAY]
        assert main([*args, "--json"]) == 0
        r = json.loads(capsys.readouterr().out)
        # 72 grid + 53 shipped + 1 unknown item
        assert (r["total"], r["outcome_changed"], r["outputs_changed"]) == (126, 11, 3)
        assert r["unchanged"] == 112 and r["changed"] == 14
        items = {i["item_code"]: i for i in r["items"]}
        assert set(items) == {"BA00027000", "GF00012000", "GF00034001", "XK00051000", "ZZ00000000"}
        senior = items["GF00012000"]
        assert senior["old_versions"] == ["2024.1"] and senior["new_versions"] == ["2024.2"]
        assert not senior["identical"]
        assert (senior["cases"], senior["unchanged"]) == (83, 69)
        # 440604, alive, 70+: 4 ages x 2 birthdays in the grid plus senior-reject-hukou
        assert senior["transitions"] == [
            {
                "from": "REJECT",
                "to": "APPROVE",
                "count": 9,
                "examples": [
                    "grid-75-1951-11-20-440604-0",
                    "grid-75-1951-08-12-440604-0",
                    "grid-85-1941-11-20-440604-0",
                    "grid-85-1941-08-12-440604-0",
                    "grid-95-1931-11-20-440604-0",
                ],
            },
            {
                "from": "REJECT",
                "to": "MANUAL_REVIEW",
                "count": 2,
                "examples": ["grid-106-1920-11-20-440604-0", "grid-106-1920-08-12-440604-0"],
            },
        ]
        assert senior["output_changes"] == [
            {
                "output": "monthly_amount",
                "from": 100,
                "to": 120,
                "count": 3,
                "examples": [
                    "grid-85-1941-11-20-440605-0",
                    "grid-85-1941-08-12-440605-0",
                    "senior-approve-80",
                ],
            }
        ]
        for code in ("BA00027000", "GF00034001", "XK00051000"):
            assert items[code]["identical"] and items[code]["unchanged"] == items[code]["cases"]
            assert items[code]["skipped_identical"] == items[code]["cases"]
        assert items["ZZ00000000"] == {
            **items["ZZ00000000"],
            "cases": 1,
            "unchanged": 1,
            "transitions": [],
        }

        assert main(args) == 0
        out = capsys.readouterr().out
        assert "GF00012000  高龄老人津贴申领  版本 versions 2024.1 → 2024.2" in out
        assert "REJECT → APPROVE" in out and "monthly_amount 100 → 120" in out
        assert "未变 Unchanged: 69 / 83" in out
        assert "126 个案例 cases, 11 结果变化 outcome changed, 3 输出变化 outputs changed" in out

        assert main([*args, "--fail-on-change"]) == 1
        capsys.readouterr()
        same = ["rules", "diff", str(RULESETS), str(RULESETS), "--cases", str(cases)]
        assert main([*same, "--fail-on-change", "--today", TODAY]) == 0

    def test_same_answer_every_way(self, tmp_path: Path) -> None:
        """Worker processes, and deciding even identical files twice, change nothing."""
        new = senior_v2(copy_rules(tmp_path, "new"))
        cases = load_cases(diff_cases(tmp_path))
        one = run_rules_diff(RULESETS, new, cases, TODAY_DATE, jobs=1)
        two = run_rules_diff(RULESETS, new, cases, TODAY_DATE, jobs=2)
        full = run_rules_diff(RULESETS, new, cases, TODAY_DATE, jobs=1, decide_all=True)
        assert (
            two["jobs"] == 2 and one["skipped_identical"] == 42
        )  # the other three items: same file

        def strip(r: dict[str, Any]) -> Any:
            return [
                {k: v for k, v in i.items() if k != "skipped_identical"} for i in r["items"]
            ], r["changed"]

        assert strip(one) == strip(two) == strip(full)
        assert full["skipped_identical"] == 0

    def test_error_transitions(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """An item removed answers NOT_FOUND; a newly required field makes cases invalid."""
        new = copy_rules(tmp_path, "new")
        (new / "BA00027000-class2-device-filing.yaml").unlink()
        edit(
            new / SENIOR_FILE,
            # (a window field: a source-backed one such as applicant.deceased may not be)
            "application.by_agent: {type: boolean, label: 代办, default: false}",
            "application.by_agent: {type: boolean, label: 代办, required: true}",
        )
        cases = write_jsonl(tmp_path / "c.jsonl", shipped_cases())
        args = ["rules", "diff", str(RULESETS), str(new), "--cases", str(cases), "--today", TODAY]
        assert main([*args, "--json"]) == 0
        items = {i["item_code"]: i for i in json.loads(capsys.readouterr().out)["items"]}
        device = {(t["from"], t["to"]): t["count"] for t in items["BA00027000"]["transitions"]}
        assert device == {
            ("APPROVE", "NOT_FOUND"): 3,
            ("REJECT", "NOT_FOUND"): 7,
            ("MANUAL_REVIEW", "NOT_FOUND"): 2,
            ("INVALID_ARGUMENT", "NOT_FOUND"): 1,
        }
        assert items["BA00027000"]["new_versions"] == []
        senior = {(t["from"], t["to"]): t["count"] for t in items["GF00012000"]["transitions"]}
        # every senior case but the agent one (and the one already invalid) lacks the field
        assert senior == {
            ("APPROVE", "INVALID_ARGUMENT"): 4,
            ("REJECT", "INVALID_ARGUMENT"): 4,
            ("MANUAL_REVIEW", "INVALID_ARGUMENT"): 1,
        }

    def test_bad_rules_exit_2(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        cases = write_jsonl(tmp_path / "c.jsonl", shipped_cases()[:3])
        assert (
            main(["rules", "diff", str(RULESETS), str(tmp_path / "none"), "--cases", str(cases)])
            == 2
        )
        assert f"rule files in {tmp_path / 'none'} failed to load" in capsys.readouterr().err


# -- replay reports


class TestReplayReports:
    def wrong(self, tmp_path: Path) -> Path:
        cases = [
            {
                "case_id": "高龄-期望错误",
                "item_code": "GF00012000",
                "facts": SENIOR,
                "materials": SENIOR_MATERIALS,
                "expected": {"outcome": "APPROVE", "outputs": {"monthly_amount": 999}},
            },
            *shipped_cases(),
        ]
        return write_jsonl(tmp_path / "cases.jsonl", cases)

    def test_junit(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        path, xml_out = self.wrong(tmp_path), tmp_path / "report.xml"
        args = ["replay", str(path), "--rulesets", str(RULESETS), "--today", TODAY]
        assert main([*args, "--junit", str(xml_out)]) == 1
        capsys.readouterr()
        root = ET.fromstring(xml_out.read_bytes())
        assert root.tag == "testsuites"
        assert (root.get("tests"), root.get("failures")) == ("54", "1")
        suites = {s.get("name"): s for s in root.iter("testsuite")}
        assert sorted(suites) == ["BA00027000", "GF00012000", "GF00034001", "XK00051000"]
        senior = suites["GF00012000"]
        assert (senior.get("tests"), senior.get("failures")) == ("12", "1")
        assert len(senior.findall("testcase")) == 12
        failures = [(c, f) for c in root.iter("testcase") for f in c.findall("failure")]
        ((case, failure),) = failures
        assert case.get("name") == "高龄-期望错误" and case.get("classname") == "GF00012000"
        assert case.get("line") == "1" and case.get("file") == str(path)
        assert failure.get("message") == "outputs.monthly_amount: expected 999, got 30"
        assert "高龄-期望错误" in (failure.text or "")
        assert xml_out.read_bytes().startswith(b"<?xml version='1.0' encoding='utf-8'?>")

    def test_junit_unwritable(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        path = self.wrong(tmp_path)
        bad = tmp_path / "no" / "such" / "dir.xml"
        args = ["replay", str(path), "--rulesets", str(RULESETS), "--junit", str(bad)]
        assert main(args) == 2
        assert "cannot write" in capsys.readouterr().err

    def test_per_item_table(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        path = self.wrong(tmp_path)
        assert main(["replay", str(path), "--rulesets", str(RULESETS), "--today", TODAY]) == 1
        out = capsys.readouterr().out
        lines = out.splitlines()
        head = next(n for n, x in enumerate(lines) if x.startswith("事项 Item"))
        assert lines[head].split() == [
            "事项",
            "Item",
            "案例",
            "Cases",
            "通过",
            "Passed",
            "失败",
            "Failed",
            "结果",
            "Outcomes",
        ]
        rows = {x.split()[0]: x.split() for x in lines[head + 2 : head + 6]}
        assert rows["GF00012000"][:4] == ["GF00012000", "12", "11", "1"]
        assert rows["BA00027000"][:4] == ["BA00027000", "13", "13", "0"]
        assert "APPROVE 5," in " ".join(rows["GF00012000"])
        assert "54 个案例 cases, 53 通过 passed, 1 失败 failed" in out

    def test_progress_only_on_a_terminal(self) -> None:
        class Tty(io.StringIO):
            def isatty(self) -> bool:
                return True

        tty = Tty()
        bar = render.progress_bar(2000, "replay", stream=tty)
        bar.update(2000)
        bar.close()
        assert "replay:" in tty.getvalue() and "/2000" in tty.getvalue()
        piped = io.StringIO()
        bar = render.progress_bar(2000, "replay", stream=piped)
        bar.update(2000)
        bar.close()
        assert piped.getvalue() == ""
        assert type(render.progress_bar(999, "replay", stream=Tty())).__name__ == "_NoBar"
        assert list(render.progress(iter(range(3)), 3, "x")) == [0, 1, 2]


# -- 100,000 cases


def vary_cases(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """`n` cases made by varying the facts of the shipped example cases: birth dates (with a
    valid check digit), regions, yes/no facts, numbers, dates, enum values and materials."""
    rng = random.Random(seed)
    base = shipped_cases()
    regions = ["440605", "440604", "440606", "440100", "110101"]
    enums = {
        "status": ["dibao", "dibao_edge", "tekun", "none"],
        "certificate_type": ["disability_card", "veteran_card"],
        "proof": ["owned", "leased", "free_use"],
        "composition": ["individual", "family"],
    }

    def vary(key: str, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: vary(k, x) for k, x in v.items()}
        if isinstance(v, bool):
            return (not v) if rng.random() < 0.15 else v
        if isinstance(v, int | float):
            return type(v)(v * rng.choice([0.3, 0.9, 1, 1, 1, 1.1, 2]))
        if not isinstance(v, str):
            return v
        if key == "id_number" and len(v) == 18:
            birth = dt.date(1915, 1, 1) + dt.timedelta(days=rng.randrange(36000))
            first17 = v[:6] + birth.strftime("%Y%m%d") + f"{rng.randrange(1000):03d}"
            return first17 + resident_id_check_char(first17)
        if key.endswith("region") and len(v) == 6:
            return rng.choice(regions)
        if key in enums:
            return rng.choice(enums[key])
        if len(v) == 10 and v[4] == "-" and v[7] == "-":
            d = dt.date.fromisoformat(v) + dt.timedelta(days=rng.randrange(-800, 800))
            return d.isoformat()
        return v

    out = []
    for i in range(n):
        c = base[i % len(base)]
        out.append(
            {
                "case_id": f"{c['case_id']}~{i}",
                "item_code": c["item_code"],
                "facts": vary("", c["facts"]),
                "materials": [m for m in c["materials"] if rng.random() > 0.05],
                "expected": {},
            }
        )
    return out


@pytest.mark.slow
def test_diff_100k_cases(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_jsonl(tmp_path / "100k.jsonl", vary_cases(100_000))
    new = senior_v2(copy_rules(tmp_path, "new"))
    started = time.perf_counter()
    args = ["rules", "diff", str(RULESETS), str(new), "--cases", str(path), "--json"]
    assert main([*args, "--today", TODAY]) == 0
    elapsed = time.perf_counter() - started
    r = json.loads(capsys.readouterr().out)
    assert r["total"] == 100_000 and r["changed"] > 0
    with capsys.disabled():
        print(
            f"\n100k diff: {elapsed:.1f}s end to end, {r['seconds']:.1f}s deciding, "
            f"{r['jobs']} jobs, {r['skipped_identical']} skipped (identical rule file)"
        )
    assert elapsed < 60


def test_wire_facts_is_the_struct_round_trip() -> None:
    from miaopi_client.client import facts_struct
    from miaopi_server.edge import convert

    for c in [*shipped_cases(), *vary_cases(500)]:
        fast = wire_facts(c["facts"])
        slow = convert.facts_from_struct(facts_struct(c["facts"]))
        assert fast == slow
        assert json.dumps(fast, sort_keys=True) == json.dumps(slow, sort_keys=True)
    with pytest.raises(CaseInvalid):
        wire_facts({"premises": {"area_sqm": float("nan")}})
    assert wire_facts({"a": {"n": 10**400 // 10**390}}) == {"a": {"n": 1e10}}


def test_nan_is_a_case_error_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    device = next(c for c in shipped_cases() if c["case_id"] == "device-approve")
    text = json.dumps({**device, "expected": {"outcome": "INVALID_ARGUMENT"}}, ensure_ascii=False)
    path = tmp_path / "nan.jsonl"
    path.write_text(text.replace('"area_sqm": 120', '"area_sqm": NaN') + "\n", encoding="utf-8")
    assert main(["replay", str(path), "--rulesets", str(RULESETS), "--today", TODAY]) == 0
    capsys.readouterr()
    new = copy_rules(tmp_path, "new")
    assert main(["rules", "diff", str(RULESETS), str(new), "--cases", str(path), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert (r["total"], r["unchanged"], r["changed"]) == (1, 1, 0)
