"""durable_rules' fixed-size tables cannot be reached from a rule file or a case (issue 11,
items 1-9): what used to crash, hang or mislead the engine now loads and decides correctly, and
what cannot be spread over engine rulesets is refused with a located error by lint and loader.

Every scenario that once killed or froze the process runs in its own subprocess with a timeout
(all started at once), so a regression fails a test instead of taking the test run down."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from miaopi_server.decision.engine import Engine
from miaopi_server.lang.compiler import Compares, FieldSpec, compile_condition
from miaopi_server.lang.parser import parse
from miaopi_server.lang.probes import MISSING, ProbeTable
from miaopi_server.lang.reference import evaluate
from miaopi_server.rules.directory import compile_directory
from miaopi_server.rules.engine_shape import PART_BUDGET, cost, partition, split_rule
from tests.support import (
    DEVICE,
    DEVICE_MATERIALS,
    RULESETS,
    SENIOR,
    SENIOR_FILE,
    rule_file,
    with_facts,
)

TIMEOUT = 60  # seconds per scenario; each takes about one
SENIOR_TEXT = (RULESETS / SENIOR_FILE).read_text(encoding="utf-8")

# Loads the rules directory argv[1] and decides each [facts, materials] of argv[2] as the
# senior item: one JSON line per case with the outcome and the reasons' rule ids.
RUNNER = """
import datetime as dt, json, sys
from pathlib import Path
from miaopi_server.decision.catalog import load_catalog
catalog = load_catalog(Path(sys.argv[1]))
for facts, materials in json.loads(sys.argv[2]):
    d = catalog.decide("GF00012000", facts, materials, dt.date(2026, 11, 23))
    print(json.dumps({"outcome": d.outcome, "reasons": [r.rule_id for r in d.reasons]}))
"""


def rule(rid: str, when: str, outcome: str = "MANUAL_REVIEW") -> str:
    return (
        f"  - id: {rid}\n    when: '{when}'\n    outcome: {outcome}\n"
        "    message: 测试\n    basis: measures_3\n"
    )


def senior_with(rules: str = "", form: str = "", materials: str = "", lists: str = "") -> str:
    """The shipped senior-allowance file plus form fields, materials, lists and rules."""
    text = SENIOR_TEXT
    if form:
        text = text.replace("\nderived:", form + "\nderived:")
    if materials:
        text = text.replace("\nmaterials_basis:", materials + "\nmaterials_basis:")
    if lists:
        text = text.replace("\nmaterials:", "\nlists:" + lists + "\nmaterials:")
    return text + rules


TAGS = "\n  applicant.tags: {type: string_list, label: 标签}"
MATCHING = ["440605", *(str(440000 + i) for i in range(599))]
OLD = ["id_card", "hukou_book", "bank_account"]
SENIOR_76 = [SENIOR, OLD]  # 76 years old on 2026-11-20, local hukou: eligible


def in_list() -> tuple[str, list[Any]]:
    values = ", ".join(f'"{v}"' for v in MATCHING)
    return senior_with(rule("big", f"applicant.hukou_region in [{values}]")), [SENIOR_76]


def or_chain() -> tuple[str, list[Any]]:
    when = " or ".join(f'applicant.hukou_region == "{v}"' for v in MATCHING)
    return senior_with(rule("big", when)), [SENIOR_76]


def any_not_in_named_list() -> tuple[str, list[Any]]:
    values = "".join(f"\n      - v{i}" for i in range(20_000))
    lists = f"\n  big:\n    label: 大清单\n    values:{values}"
    text = senior_with(rule("big", "any applicant.tags not in list big"), TAGS, lists=lists)
    outside = with_facts(SENIOR, applicant__tags=["v1", "zzz"])
    inside = with_facts(SENIOR, applicant__tags=["v1", "v19999"])
    return text, [[outside, OLD], [inside, OLD]]


def brackets() -> tuple[str, list[Any]]:
    return senior_with("".join(rule(f"b{i}", f"applicant.age >= {i}") for i in range(70))), [
        SENIOR_76
    ]


def missing_materials() -> tuple[str, list[Any]]:
    extra = "".join(f"\n  - {{id: m{i}, name: 材料{i}, need: required}}" for i in range(64))
    return senior_with(materials=extra), [SENIOR_76]


def many_matching_tags() -> tuple[str, list[Any]]:
    values = ", ".join(f'"t{i}"' for i in range(200))
    tags = with_facts(SENIOR, applicant__tags=[f"t{i}" for i in range(65)])
    return senior_with(rule("big", f"any applicant.tags in [{values}]"), TAGS), [[tags, OLD]]


def wide_or() -> tuple[str, list[Any]]:
    return senior_with(rule("big", " or ".join(f"applicant.age >= {i}" for i in range(65)))), [
        SENIOR_76
    ]


def many_fields() -> tuple[str, list[Any]]:
    form = "".join(f"\n  extra.f{i}: {{type: integer, label: 字段{i}}}" for i in range(300))
    rules = "".join(rule(f"f{i}", f"extra.f{i} == {i}") for i in range(300))
    facts = dict(SENIOR, extra={f"f{i}": i for i in range(300)})
    return senior_with(rules, form), [[facts, OLD]]


def same_condition() -> tuple[str, list[Any]]:
    rules = "".join(rule(f"s{i}", "applicant.age >= 70", "APPROVE") for i in range(256))
    extra = "\n  - {id: m1, name: 材料一, need: required}"
    return senior_with(rules, materials=extra), [[SENIOR, [*OLD, "m1"]]]


SCENARIOS = {
    f.__name__: f
    for f in (
        in_list,
        or_chain,
        any_not_in_named_list,
        brackets,
        missing_materials,
        many_matching_tags,
        wide_or,
        many_fields,
        same_condition,
    )
}


@pytest.fixture(scope="module")
def decided(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]] | str]:
    """Every scenario's decisions (or what went wrong), each run in its own process."""
    running = {}
    for name, build in SCENARIOS.items():
        text, cases = build()
        root = tmp_path_factory.mktemp(name)
        (root / "item.yaml").write_text(text, encoding="utf-8")
        running[name] = subprocess.Popen(
            [sys.executable, "-c", RUNNER, str(root), json.dumps(cases, ensure_ascii=False)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    out: dict[str, list[dict[str, Any]] | str] = {}
    for name, proc in running.items():
        try:
            stdout, stderr = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            out[name] = f"hung for more than {TIMEOUT} s"
            continue
        if proc.returncode != 0:
            out[name] = f"exit {proc.returncode}: {stderr.strip()[-300:]}"
        else:
            out[name] = [json.loads(line) for line in stdout.splitlines()]
    return out


class TestFormerCrashes:
    """Items 1-6: each rule file that crashed, hung or misled the engine decides correctly."""

    def test_long_in_list_decides(self, decided):
        """600 values in `x in [...]` (498 aborted the process, 500+ hung the reload)."""
        assert decided["in_list"] == [{"outcome": "MANUAL_REVIEW", "reasons": ["big", "eligible"]}]

    def test_long_or_chain_is_spread(self, decided):
        """A hand-written 600-branch `or` (hung create_ruleset) is spread over engine rules."""
        assert decided["or_chain"] == [{"outcome": "MANUAL_REVIEW", "reasons": ["big", "eligible"]}]

    def test_any_not_in_a_long_named_list(self, decided):
        """`any x not in list big` over 20,000 values (a larger list segfaulted the first
        decision) is a probe: right both ways."""
        assert decided["any_not_in_named_list"] == [
            {"outcome": "MANUAL_REVIEW", "reasons": ["big", "eligible"]},
            {"outcome": "APPROVE", "reasons": ["eligible"]},
        ]

    def test_seventy_matching_brackets(self, decided):
        """70 rules matching at once (64 was engine error 303, INTERNAL)."""
        [d] = decided["brackets"]  # type: ignore[misc]
        assert d["outcome"] == "MANUAL_REVIEW"
        assert d["reasons"] == [*(f"b{i}" for i in range(70)), "eligible"]  # deciding first

    def test_sixty_four_missing_materials(self, decided):
        [d] = decided["missing_materials"]  # type: ignore[misc]
        assert d["outcome"] == "REJECT"
        assert d["reasons"] == [*(f"material:m{i}" for i in range(64)), "eligible"]

    def test_sixty_five_matching_tags(self, decided):
        assert decided["many_matching_tags"] == [
            {"outcome": "MANUAL_REVIEW", "reasons": ["big", "eligible"]}
        ]

    def test_sixty_five_matching_or_branches(self, decided):
        assert decided["wide_or"] == [{"outcome": "MANUAL_REVIEW", "reasons": ["big", "eligible"]}]

    def test_three_hundred_fields_read(self, decided):
        """300 facts read by conditions (more than 254 properties was error 302 / 309)."""
        [d] = decided["many_fields"]  # type: ignore[misc]
        assert d["reasons"] == [*(f"f{i}" for i in range(300)), "eligible"]

    def test_fired_set_is_exact_with_256_rules_on_one_condition(self, decided):
        """256 rules with one condition: exactly those fire (the 256th used to overflow into
        another table and report an unsubmitted material as missing: a wrong REJECT)."""
        assert decided["same_condition"] == [
            {"outcome": "APPROVE", "reasons": ["eligible", *(f"s{i}" for i in range(256))]}
        ]


class TestShape:
    def test_cost_counts_pushes_through_or_nodes(self):
        """A test after an `$or` is visited once per branch: the bound multiplies."""
        assert cost({"a": 1}) == 1
        assert cost({"$or": [{"a": 1}, {"b": 1}]}) == 4  # two tests, two forwarding pushes
        assert cost({"$and": [{"$or": [{"a": 1}, {"b": 1}]}, {"c": 1}]}) == 6

    def test_big_or_is_split_into_parts_that_fit(self):
        cond = {"$or": [{"a": i} for i in range(600)]}
        rules = split_rule("r:big", cond)
        assert rules is not None and len(rules) > 1
        assert all(name.startswith("r:big#") for name in rules)
        assert all(cost(c) <= PART_BUDGET - 1 for c in rules.values())
        values = sorted(b["a"] for c in rules.values() for b in c["$or"])
        assert values == list(range(600))

    def test_a_split_rule_fires_once_under_its_own_name(self):
        engine = Engine()
        rules = split_rule("r", {"$or": [{"a": i} for i in range(300)]})
        assert rules is not None
        handle = engine.register("t", {**rules, "other": {"b": 1}})
        assert len(handle.parts) > 1
        assert engine.evaluate(handle, {"a": 299, "b": 1}) == ["r", "other"]
        assert engine.evaluate(handle, {"a": 300, "b": 1}) == ["other"]
        engine.unregister(handle)

    def test_parts_stay_within_budget(self):
        conditions = {f"r{i}": {"$gte": {f"x.f{i}": i}} for i in range(500)}
        parts = partition(conditions)
        assert sum(len(p) for p in parts) == 500
        assert all(sum(cost(conditions[n]) for n in p) + 1 <= PART_BUDGET for p in parts)


def write(tmp_path: Path, text: str, name: str = "item.yaml") -> Path:
    root = tmp_path / "rules"
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(text, encoding="utf-8")
    return root


def codes_at(root: Path) -> list[tuple[str, int, int]]:
    _, diagnostics = compile_directory(root)
    return [(d.code, d.line, d.column) for d in diagnostics if d.severity == "error"]


class TestRefusals:
    """What cannot be spread is refused, located, by the loader the server and lint share."""

    def test_too_many_parts(self, tmp_path):
        """An item needing more than 64 engine rulesets: each rule here fills one alone and the
        shipped rules take the first, so the 64th added rule is the first that does not fit."""
        wide = " and ".join(f"applicant.age != {i}" for i in range(40))
        text = senior_with("".join(rule(f"w{i}", wide) for i in range(70)))
        found = codes_at(write(tmp_path, text))
        assert [c for c, _, _ in found] == ["MP342"]
        first_line = text.count("\n", 0, text.index("id: w63")) + 2  # `when:` after `id:`
        assert found[0][1:] == (first_line, 12)  # the condition's first character

    def test_named_list_too_long(self, tmp_path):
        values = "".join(f"\n      - v{i}" for i in range(20_001))
        text = senior_with(lists=f"\n  big:\n    label: 大清单\n    values:{values}")
        found = codes_at(write(tmp_path, text))
        assert found == [("MP343", text[: text.index("  big:")].count("\n") + 1, 3)]

    @pytest.mark.parametrize("subject", ["sid", "id", "_m", "_p", "_always", "_x"])
    def test_reserved_subjects_refused(self, tmp_path, subject):
        """Subjects the engine (sid, id) or the fact layout (_always, _m, _p) use never fired
        or broke every decision; they are refused where they are written."""
        form = f"\n  {subject}.flag: {{type: boolean, label: 标记, default: false}}"
        text = senior_with(rule("r", f"{subject}.flag"), form)
        line = text[: text.index(f"  {subject}.flag")].count("\n") + 1
        assert ("MP112", line, 3) in codes_at(write(tmp_path, text))

    def test_billion_laughs_refused_at_once_by_lint(self, tmp_path):
        """Lint expanded every alias (over a minute, 1.4 GB); now it refuses the file like the
        loader does, with the same diagnostic."""
        lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
        lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 12)]
        root = write(tmp_path, "\n".join(lines) + "\n")
        done = subprocess.run(
            [sys.executable, "-m", "miaopi_client.cli", "rules", "lint", str(root)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        message = "规则文件不支持 YAML 锚点和别名（& 与 *），请直接写出内容"
        expected = f"rules/item.yaml:1:5: error MP110: {message}"
        assert done.stdout.splitlines()[0] == expected
        assert done.returncode == 1
        _, diagnostics = compile_directory(root)
        assert [(d.line, d.column, d.code, d.message) for d in diagnostics] == [
            (1, 5, "MP110", message)
        ]


NUMBER = {"a.x": FieldSpec("a.x", "number", True, compares=Compares.NUMBER)}
CONSTANTS = ["0.00001", "-0.00001", "0.0", "1000000000000000.0", "-3", "123.5"]
VALUES = [1e-05, -1e-05, 1e-300, -1e-300, 5e-324, 0.0, 1e20, -1e20, 1e300, -1e300, 1.5e-07, -3]


class TestNumbers:
    """Item 9: numbers Python writes with an exponent reach the engine as numbers."""

    def test_tiny_huge_and_negative_values_agree_with_the_reference(self):
        sources = [f"a.x {op} {c}" for op in ("<", "<=", ">", ">=", "==", "!=") for c in CONSTANTS]
        trees = {f"c{i}": parse(s) for i, s in enumerate(sources)}
        compiled = {k: compile_condition(t, NUMBER, {}, ProbeTable()) for k, t in trees.items()}
        assert all(not c.errors for c in compiled.values())
        engine = Engine()
        handle = engine.register("numbers", {k: c.condition for k, c in compiled.items()})
        try:
            for value in VALUES:
                fired = set(engine.evaluate(handle, {"_always": True, "a": {"x": value}}))
                facts = {"a.x": value}
                expected = {
                    k
                    for k, t in trees.items()
                    if evaluate(t, lambda p, f=facts: f.get(p, MISSING), {})  # type: ignore[misc]
                }
                assert fired == expected, value
        finally:
            engine.unregister(handle)

    def test_tiny_area_in_the_shipped_device_filing(self, catalog):
        """`premises.area_sqm: 1e-05` was engine error 204 (INTERNAL); it is just small."""
        facts = with_facts(DEVICE, premises__area_sqm=1e-05)
        decision = catalog.decide("BA00027000", facts, DEVICE_MATERIALS, dt.date(2026, 11, 23))
        assert decision.outcome == "REJECT"
        assert "premises_too_small" in [r.rule_id for r in decision.reasons]


TODAY = dt.date(2026, 11, 23)


class TestHugeNumbers:
    """Numbers beyond 2**63 compare wrongly in the engine (it clamps integers): a condition
    cannot name one, and a case cannot give one, so no decision rests on the clamp."""

    def test_condition_literal_beyond_the_bound_is_refused(self):
        from miaopi_server.lang.parser import ExprSyntaxError, parse

        parse("applicant.n > 1000000000000000")  # 10**15: the largest allowed
        with pytest.raises(ExprSyntaxError) as info:
            parse("applicant.n > 10000000000000000000")
        assert info.value.code == "MP210" and info.value.pos == 14

    def test_case_value_beyond_the_bound_is_invalid(self, catalog_with_number):
        from miaopi_server.errors import CaseInvalid

        catalog, facts = catalog_with_number
        for value in (3e19, -(2.0**64), 1e15 + 2):
            with pytest.raises(CaseInvalid) as info:
                catalog.decide("T0001", {**facts, "p": {"n": value}}, [], TODAY)
            assert [v.field for v in info.value.violations] == ["facts.p.n"]
        assert catalog.decide("T0001", {**facts, "p": {"n": 1e15}}, [], TODAY).outcome


@pytest.fixture()
def catalog_with_number(tmp_path):
    from miaopi_server.decision.catalog import load_catalog

    root = tmp_path / "rules"
    root.mkdir()
    (root / "t.yaml").write_text(
        rule_file("""\
            form:
              p.n: {type: number, required: true}
            materials: []
            materials_basis: art1
            rules:
              - id: big
                when: p.n > 1000000
                outcome: MANUAL_REVIEW
                message: 数额大
                basis: art1
            """),
        encoding="utf-8",
    )
    catalog = load_catalog(root)
    yield catalog, {}
    catalog.close()
