"""The shipped items on recorded lookups (四免): cases carrying what the sources said
(`sourced`, as `miaopi audit export` writes it) for a fact filled from shared data, a conflict,
a record that does not exist, an expired or revoked e-license and an unreachable source, run by
`miaopi rules test` beside the shipped rule files and their own cases. Deterministic: no source
is called. Their ID numbers are ordinary ones (not the registry's reserved 990-999)."""

from __future__ import annotations

import json
import shutil

import pytest

from miaopi_client.cli import main
from tests.support import ROOT, RULESETS

SOURCED = ROOT / "tests" / "data" / "sourced"


def cases() -> list[dict[str, object]]:
    return [
        json.loads(line)
        for path in sorted(SOURCED.glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]


def test_the_cases_cover_what_the_issue_asks_for():
    ids = {str(c["case_id"]) for c in cases()}
    for what in ("conflict", "no-record", "elicense-expired", "unavailable", "prefilled"):
        assert {i for i in ids if what in i}, what
    assert all("sourced" in c for c in cases())


def test_the_shipped_items_decide_the_sourced_cases_as_expected(tmp_path, capsys):
    rules = tmp_path / "rules"
    shutil.copytree(RULESETS, rules)
    for path in SOURCED.glob("*.jsonl"):
        shutil.copy(path, rules / path.name)
    code = main(["rules", "test", str(rules), "--min-coverage", "100", "--today", "2026-11-20"])
    out = capsys.readouterr().out
    assert code == 0, out
    total = sum(1 for p in rules.glob("*.jsonl") for line in p.read_text("utf-8").splitlines())
    assert f"{total} 个案例 cases, {total} 通过 passed, 0 失败 failed" in out


@pytest.mark.parametrize("case_id", ["senior-sourced-conflict-hukou", "senior-sourced-unavailable"])
def test_without_the_recorded_lookups_the_same_case_is_approved(tmp_path, capsys, case_id):
    """What sends these cases to review is the recorded data, nothing else in the case."""
    case = next(c for c in cases() if c["case_id"] == case_id)
    del case["sourced"]
    case["expected"] = {"outcome": "APPROVE"}
    rules = tmp_path / "rules"
    shutil.copytree(RULESETS, rules)
    (rules / "one.jsonl").write_text(json.dumps(case, ensure_ascii=False) + "\n", "utf-8")
    assert main(["rules", "test", str(rules), "--today", "2026-11-20"]) == 0, (
        capsys.readouterr().out
    )
