"""The shipped items on recorded lookups (四免): cases beside the rule files carrying what the
sources said (`sourced`, as `miaopi audit export` writes it) — a fact filled from shared data,
a conflict, a record that does not exist, an expired or revoked e-license, an unreachable source
— run by `miaopi rules test` with the rule files' other cases. Deterministic and offline: no
source is called. Their ID numbers are ordinary ones (not the registry's reserved 990-999)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from miaopi_client.cli import main
from tests.support import RULESETS

TODAY = "2026-11-20"
SOURCED_FILES = sorted(RULESETS.glob("*.sourced.cases.jsonl"))


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def cases() -> list[dict[str, Any]]:
    return [c for path in SOURCED_FILES for c in lines(path)]


def test_recorded_lookups_sit_in_their_own_case_files():
    """Every shipped case on recorded lookups is in a *.sourced.cases.jsonl file beside its
    rule file, and only those: a server replay of the others needs no lookups."""
    assert [p.name for p in SOURCED_FILES] == [
        "GF00012000-senior-allowance.sourced.cases.jsonl",
        "GF00034001-disability-living-subsidy.sourced.cases.jsonl",
    ]
    for path in sorted(RULESETS.glob("*.jsonl")):
        carried = {"sourced" in c for c in lines(path)}
        assert carried == {path in SOURCED_FILES}, path.name
    assert not (RULESETS.parent / "tests" / "data" / "sourced").exists()


def test_the_cases_cover_what_the_issue_asks_for():
    """Conflict, missing record, expired e-license and unavailable source, each asserting the
    data: reasons it gives (none, where the item's setting gives none)."""
    by_id = {str(c["case_id"]): c for c in cases()}
    for what in ("conflict", "no-record", "elicense-expired", "unavailable", "prefilled"):
        assert {i for i in by_id if what in i}, what
    decided = [c for c in by_id.values() if c["expected"]["outcome"] != "INVALID_ARGUMENT"]
    assert all("data_reasons" in c["expected"] for c in decided)
    reasons = {r for c in decided for r in c["expected"]["data_reasons"]}
    assert reasons == {
        "data:conflict:applicant.hukou_region",
        "data:conflict:disability.grade",
        "data:unavailable:population",
        "data:unavailable:disability",
        "data:unavailable:elicense",
    }


def test_rules_test_decides_them_beside_the_rule_files(capsys):
    code = main(
        ["rules", "test", str(RULESETS), "--min-coverage", "100", "--today", TODAY, "--json"]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["failed"] == 0
    for item in report["items"]:
        for path in SOURCED_FILES:
            if path.name.startswith(item["item_code"]):
                assert str(path) in item["case_files"]
    counted = sum(i["cases"] for i in report["items"])
    assert counted == sum(len(lines(p)) for p in sorted(RULESETS.glob("*.jsonl")))
    assert report["cases"] == counted and report["unattributed"] == 0


def test_no_registry_and_no_network_are_needed(tmp_path, capsys):
    """The rule files and their cases alone, copied where no registry lies beside them."""
    rules = tmp_path / "rules"
    shutil.copytree(RULESETS, rules)
    assert main(["rules", "test", str(rules), "--today", TODAY]) == 0, capsys.readouterr().out


@pytest.mark.parametrize(
    "case_id",
    [
        "senior-sourced-conflict-hukou",
        "senior-sourced-unavailable",
        "disability-sourced-conflict-grade",
        "disability-sourced-unavailable",
    ],
)
def test_without_the_recorded_lookups_the_same_case_is_approved(tmp_path, capsys, case_id):
    """What sends these cases to review is the recorded data, nothing else in the case."""
    case = next(c for c in cases() if c["case_id"] == case_id)
    del case["sourced"]
    case["expected"] = {"outcome": "APPROVE", "data_reasons": []}
    rules = tmp_path / "rules"
    shutil.copytree(RULESETS, rules, ignore=shutil.ignore_patterns("*.jsonl"))
    (rules / "one.cases.jsonl").write_text(json.dumps(case, ensure_ascii=False) + "\n", "utf-8")
    assert main(["rules", "test", str(rules), "--today", TODAY]) == 0, capsys.readouterr().out
