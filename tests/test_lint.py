"""`miaopi rules lint`: golden outputs for broken rule directories, the rule-file JSON Schema, and
the contradiction check behind the "never matches" warnings.

Golden files: tests/lint_cases/<case>/ is a rules directory and tests/lint_cases/<case>.expected
is the exact stdout of `miaopi rules lint tests/lint_cases/<case>`. After an intended change,
regenerate them with `UPDATE_GOLDEN=1 .venv/bin/python -m pytest -q tests/test_lint.py` and
review the diff.
"""

from __future__ import annotations

import json
import os
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator, FormatChecker

from miaopi_client.cli import main
from miaopi_server.lang.parser import parse
from miaopi_server.rules.directory import compile_directory
from miaopi_server.rules.fieldtypes import FIELD_TYPES
from miaopi_server.rules.lint import lint, lint_directory, never_holds
from miaopi_server.rules.loader import _FIELD_KEYS, DERIVE_FUNCTIONS
from miaopi_server.rules.model import ITEM_TYPES, MATERIAL_NEEDS, OUTCOMES, Item
from miaopi_server.rules.schema import rulefile_schema
from tests.support import REMEDIES, RULESETS, rule_file

CASES = Path(__file__).parent / "lint_cases"
CASE_NAMES = sorted(p.name for p in CASES.iterdir() if p.is_dir())
SCHEMA = rulefile_schema()
SCHEMA_PATH = (Path(__file__).parents[1] / "docs" / "rulefile.schema.json").resolve()
SCHEMA_LINE = "# yaml-language-server: $schema=../docs/rulefile.schema.json"

GOOD = (
    rule_file("""\
    form:
      person.age: {type: integer, label: 年龄, required: true}
      person.name: {type: string, label: 姓名, required: true}
      person.flag: {type: boolean, label: 标记, default: false}
    materials:
      - {id: form, name: 申请表, need: required}
    materials_basis: art1
    rules:
      - id: old
        when: person.age >= 60 and not person.flag
        outcome: APPROVE
        message: 符合条件
        basis: art1
    """)
    + REMEDIES
)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["rules", "lint", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def write_rules(tmp_path: Path, text: str, name: str = "t.yaml") -> Path:
    root = tmp_path / "rules"
    root.mkdir(exist_ok=True)
    (root / name).write_text(text, encoding="utf-8")
    return root


class _Yaml12Dates(yaml.SafeLoader):
    """Like an editor's YAML 1.2 parser: an unquoted date stays text."""


_Yaml12Dates.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def validate(path: Path) -> list[str]:
    """Schema errors of one YAML file, validated the way an editor does (the whole schema)."""
    instance = yaml.load(
        path.read_text(encoding="utf-8"), Loader=_Yaml12Dates
    )  # a SafeLoader subclass
    validator = Draft202012Validator(SCHEMA, format_checker=FormatChecker())
    return [e.message for e in validator.iter_errors(instance)]


class TestGolden:
    @pytest.mark.parametrize("case", CASE_NAMES)
    def test_output_matches_golden(self, case: str, capsys: pytest.CaptureFixture[str]) -> None:
        """The lint output of each broken directory is exactly its golden file."""
        code, out, err = run_cli(capsys, str(CASES / case))
        golden = CASES / f"{case}.expected"
        if os.environ.get("UPDATE_GOLDEN") == "1":
            golden.write_text(out, encoding="utf-8")
        assert err == ""
        assert out == golden.read_text(encoding="utf-8")
        errors = int(re.match(r"(\d+) errors?", out.splitlines()[-1]).group(1))  # type: ignore[union-attr]
        assert code == (1 if errors else 0)

    def test_every_golden_has_a_case(self) -> None:
        """No stale golden file is left behind when a case is renamed or removed."""
        assert sorted(p.stem for p in CASES.glob("*.expected")) == CASE_NAMES

    def test_output_is_relative_and_readable(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Paths are relative to the directory's parent; Chinese is printed as is."""
        _, out, _ = run_cli(capsys, str(CASES / "schema_only"))
        assert str(CASES) not in out
        assert "schema_only/item.yaml:" in out
        assert "\\u" not in out
        assert "应为文字，但 YAML 把 2024.10 读作数字" in out

    @pytest.mark.parametrize(
        ("case", "codes"),
        [
            ("yaml_syntax", {"MP100"}),
            ("schema_errors", {"MP101", "MP102", "MP105", "MP107", "MP150"}),
            ("condition_syntax", {"MP202", "MP204"}),
            ("references", {"MP301", "MP302", "MP320"}),
            ("duplicate_ids", {"MP104", "MP106"}),
            ("never_matches", {"MP401"}),
            ("no_approve", {"MP401", "MP402"}),
            ("unused", {"MP403", "MP404", "MP405"}),
            ("outputs", {"MP103", "MP406"}),
            ("schema_only", {"MP101", "MP150"}),
            ("engine_limits", {"MP112", "MP340", "MP341", "MP343"}),
            ("yaml_aliases", {"MP110"}),
        ],
    )
    def test_case_reports_its_codes(self, case: str, codes: set[str]) -> None:
        """Each case exercises the codes it is named for, and only those."""
        assert {d.code for d in lint_directory(CASES / case)} == codes


class TestCommand:
    def test_strict_turns_warnings_into_failure(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Warnings alone exit 0; with --strict they exit 1."""
        code, out, _ = run_cli(capsys, str(CASES / "unused"))
        assert code == 0 and out.endswith("0 errors, 4 warnings in 1 file\n")
        code, _, _ = run_cli(capsys, str(CASES / "unused"), "--strict")
        assert code == 1

    def test_missing_directory_exits_2(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        code, out, err = run_cli(capsys, str(tmp_path / "nope"))
        assert (code, out) == (2, "")
        assert "does not exist" in err

    def test_file_instead_of_directory_exits_2(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        (tmp_path / "f.yaml").write_text(GOOD, encoding="utf-8")
        code, _, err = run_cli(capsys, str(tmp_path / "f.yaml"))
        assert code == 2 and "is not a directory" in err

    def test_json_lists_every_diagnostic(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--json prints a list of objects, Chinese unescaped, and keeps the exit code."""
        code, out, _ = run_cli(capsys, str(CASES / "references"), "--json")
        rows = json.loads(out)
        assert code == 1
        assert [r["code"] for r in rows] == ["MP320", "MP301", "MP302", "MP320"]
        assert set(rows[0]) == {"file", "line", "column", "severity", "code", "message"}
        assert rows[1] == {
            "file": "references/item.yaml",
            "line": 21,
            "column": 11,
            "severity": "error",
            "code": "MP301",
            "message": "规则 young：字段 applicant.agee 不在表单或派生字段中",
        }
        assert "未定义" in out

    def test_json_of_a_clean_directory_is_empty(self, capsys: pytest.CaptureFixture[str]) -> None:
        code, out, _ = run_cli(capsys, str(RULESETS), "--json", "--strict")
        assert (code, json.loads(out)) == (0, [])

    def test_summary_counts_files_with_lists(self, capsys: pytest.CaptureFixture[str]) -> None:
        _, out, _ = run_cli(capsys, str(CASES / "schema_only"))
        assert out.endswith("5 errors, 0 warnings in 2 files\n")


class TestShipped:
    def test_shipped_rulesets_lint_clean_even_strict(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The shipped rule files have no error and no warning."""
        code, out, err = run_cli(capsys, str(RULESETS), "--strict")
        assert (code, err) == (0, "")
        assert re.fullmatch(r"0 errors, 0 warnings in \d+ files\n", out)
        assert lint_directory(RULESETS) == []

    @pytest.mark.parametrize(
        "path", sorted(RULESETS.rglob("*.yaml")), ids=lambda p: p.relative_to(RULESETS).as_posix()
    )
    def test_shipped_file_validates_against_schema(self, path: Path) -> None:
        """Every shipped YAML file (items and shared lists) is valid under the schema."""
        assert validate(path) == []

    @pytest.mark.parametrize("path", sorted(RULESETS.glob("*.yaml")), ids=lambda p: p.name)
    def test_item_files_point_editors_at_the_schema(self, path: Path) -> None:
        """The first line tells the YAML language server where the schema is."""
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first == SCHEMA_LINE
        target = first.split("$schema=", 1)[1]
        assert (path.parent / target).resolve() == SCHEMA_PATH


class TestSchema:
    def test_schema_is_a_valid_2020_12_schema(self) -> None:
        Draft202012Validator.check_schema(SCHEMA)
        assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert SCHEMA["$id"]

    def test_enums_match_the_model(self) -> None:
        """The schema's value lists are the ones the loader accepts."""
        defs = SCHEMA["$defs"]
        assert defs["field"]["properties"]["type"]["enum"] == list(FIELD_TYPES.names)
        assert defs["item"]["properties"]["type"]["enum"] == list(ITEM_TYPES)
        assert defs["rule"]["properties"]["outcome"]["enum"] == list(OUTCOMES)
        assert defs["material"]["properties"]["need"]["enum"] == list(MATERIAL_NEEDS)
        assert defs["derivedField"]["properties"]["function"]["enum"] == list(DERIVE_FUNCTIONS)
        assert set(defs["field"]["properties"]) == _FIELD_KEYS

    def test_every_property_has_a_bilingual_description(self) -> None:
        """Editors show `description` on hover: Chinese, then English."""
        missing = []

        def visit(node: Any, where: str) -> None:
            if isinstance(node, dict):
                for name, sub in node.get("properties", {}).items():
                    if isinstance(sub, dict) and not sub.get("description"):
                        if not (where.endswith("legalBasis") or where.endswith("outputCase")):
                            missing.append(f"{where}.{name}")
                    elif isinstance(sub, dict) and " / " not in sub["description"]:
                        missing.append(f"{where}.{name} (not bilingual)")
                for key, sub in node.items():
                    visit(sub, f"{where}.{key}")

        visit(SCHEMA, "#")
        assert missing == []

    @pytest.mark.parametrize(
        ("old", "new"),
        [
            ("statutory_working_days: 5", 'statutory_working_days: "5"'),
            ("outcome: APPROVE", "outcome: ACCEPT"),
            ("need: required", "need: always"),
            ("{type: integer, label: 年龄", "{type: int, label: 年龄"),
            ("required: true}", 'required: "yes"}'),
            ("{type: string, label: 姓名,", "{type: string, min: 1, label: 姓名,"),
            ('version: "1"', 'version: "1"\neffective_from: 2024-02-30'),
            ("code: T0001", 'code: "T 0001"'),
            ("schema: miaopi/rulefile/v1", "schema: miaopi/rulefile/v2"),
            ("    when: person.age", "    whne: person.age"),
            ("{type: boolean, label: 标记, default: false}", "{type: boolean, default: 否}"),
            ("- id: old", "- id: 规则一"),
            ("person.name:", "name:"),
            (
                "person.flag: {type: boolean, label: 标记, default: false}",
                "person.kind: {type: enum}",
            ),
            ("  - {id: form,", "  - {idd: form,"),
        ],
    )
    def test_schema_agrees_with_the_loader(self, tmp_path: Path, old: str, new: str) -> None:
        """A mistake both catch is reported once, by the loader, at the loader's place."""
        assert old in GOOD
        root = write_rules(tmp_path, GOOD.replace(old, new, 1))
        assert validate(root / "t.yaml") != [], "the schema should object too"
        diags = lint_directory(root)
        assert [d for d in diags if d.severity == "error"], "the loader should object"
        assert [d.code for d in diags if d.code == "MP150"] == []

    def test_schema_asks_for_quotes_the_loader_does_not(self, tmp_path: Path) -> None:
        """`version: 2024.10` loads as "2024.10" on the server but is 2024.1 to other tools."""
        root = write_rules(tmp_path, GOOD.replace('version: "1"', "version: 2024.10"))
        assert [d for d in compile_directory(root)[1] if d.severity == "error"] == []
        [d] = lint_directory(root)
        assert (d.code, d.line, d.column) == ("MP150", 8, 10)
        assert '请加引号写成 "2024.10"' in d.message

    def test_schema_reports_what_the_loader_skips(self, tmp_path: Path) -> None:
        """When the loader gives up on an entry at its first problem, the schema still reports
        the others, so one run shows every mistake."""
        text = GOOD.replace(
            "  - {id: form, name: 申请表, need: required}",
            "  - {id: 申请表, name: 申请表, need: always, e_license: 是}",
        )
        root = write_rules(tmp_path, text)
        got = sorted((d.code, d.column) for d in lint_directory(root))
        assert got == [("MP107", 10), ("MP150", 32), ("MP150", 51)]


class TestRobustness:
    @pytest.mark.parametrize("key", ["code", "name", "type", "department", "time_limit"])
    def test_missing_item_element_is_reported_not_raised(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str
    ) -> None:
        """A missing catalogue element is reported at the item, and other files still lint."""
        lines = GOOD.splitlines(keepends=True)
        broken = "".join(line for line in lines if not line.startswith(f"  {key}:"))
        root = write_rules(tmp_path, broken, "a.yaml")
        write_rules(
            tmp_path, GOOD.replace("T0001", "T0002").replace("person.age >= 60", "x"), "b.yaml"
        )
        code, out, err = run_cli(capsys, str(root))
        assert (code, err) == (1, "")
        # MP150 from the schema while the loader crashes on this (MP199), MP103 once it does not
        assert re.search(
            rf"^rules/a\.yaml:3:3: error MP(103|150): item 缺少必填项 '{key}'$", out, re.M
        )
        assert "rules/b.yaml:20:11: error MP301" in out

    @pytest.mark.parametrize(
        "text",
        [
            "",
            "- a\n- b\n",
            "42\n",
            "a: &x [*x]\n",
            "? [a]\n: b\n",
            "item: !foo bar\nversion: 1\n",
            "rules: {a: 1}\nitem: 1\nversion: x\nform: []\nlegal_basis: 3\n",
            "effective_from: 2024-02-30\n",
            "---\na: 1\n---\nb: 2\n",
        ],
    )
    def test_odd_files_give_diagnostics(self, tmp_path: Path, text: str) -> None:
        diags = lint_directory(write_rules(tmp_path, text))
        assert diags and all(d.severity == "error" for d in diags)


class TestWarnings:
    def test_no_warnings_for_a_file_with_errors(self, tmp_path: Path) -> None:
        """Warnings wait until the file has no error, so one mistake does not cascade."""
        text = GOOD.replace("when: person.age >= 60 and", "when: person.agee >= 60 and")
        text = text.removesuffix(REMEDIES)
        text += "  - {id: x, when: person.age < 1 and person.age > 1, outcome: REJECT, "
        text += "message: 不, basis: art1}\n" + REMEDIES
        codes = [d.code for d in lint_directory(write_rules(tmp_path, text))]
        assert codes == ["MP301"]
        fixed = text.replace("person.agee", "person.age")
        assert [d.code for d in lint_directory(write_rules(tmp_path, fixed))] == ["MP401"]

    def test_warnings_have_warning_severity_and_sort(self) -> None:
        diags = lint_directory(CASES / "no_approve")
        assert {d.severity for d in diags} == {"warning"}
        assert diags == sorted(diags)

    def test_report_counts(self) -> None:
        report = lint(CASES / "outputs")
        assert (report.errors, report.warnings, report.files) == (0, 5, ["outputs/item.yaml"])

    def test_required_and_identification_fields_are_not_unread(self, tmp_path: Path) -> None:
        """Required fields (names, ID numbers) are collected for the record: no MP403."""
        assert lint_directory(write_rules(tmp_path, GOOD)) == []

    def test_first_legal_basis_needs_no_citation(self, tmp_path: Path) -> None:
        text = GOOD.replace("legal_basis:\n", "legal_basis:\n  founding: {law: 设定依据法}\n")
        assert lint_directory(write_rules(tmp_path, text)) == []
        text = GOOD.replace("form:\n", "  spare: {law: 备用办法}\nform:\n")
        [d] = lint_directory(write_rules(tmp_path, text))
        assert (d.code, d.line) == ("MP404", 11)


FORM = textwrap.dedent("""\
    schema: miaopi/rulefile/v1
    item: {code: L1, name: 逻辑, type: 行政给付, department: 测试局,
           time_limit: {statutory_working_days: 5, promised_working_days: 2}}
    version: "1"
    legal_basis: {art1: {law: 测试办法}}
    form:
      p.age: {type: integer, required: true}
      p.opt: {type: integer}
      p.amount: {type: number}
      p.grade: {type: integer, min: 1, max: 4}
      p.flag: {type: boolean, default: false}
      p.maybe: {type: boolean}
      p.kind: {type: enum, values: {a: 甲, b: 乙, c: 丙}, required: true}
      p.opt_kind: {type: enum, values: {a: 甲, b: 乙}}
      p.day: {type: date}
      p.other_day: {type: date}
      p.text: {type: string}
      p.tags: {type: string_list}
    lists:
      ab: {values: [a, b]}
    rules:
      - {id: r, when: p.age > 0, outcome: APPROVE, message: 好, basis: art1}
    """)


@pytest.fixture(scope="module")
def logic_item(tmp_path_factory: pytest.TempPathFactory) -> Item:
    root = tmp_path_factory.mktemp("logic")
    (root / "l.yaml").write_text(FORM, encoding="utf-8")
    compiled, diags = compile_directory(root)
    assert [d for d in diags if d.severity == "error"] == []
    return compiled[0].item


NEVER = [
    "p.age < 16 and p.age >= 18",
    "p.age > 17 and p.age < 18",  # no integer in between
    "p.age >= 18 and p.age <= 18 and p.age != 18",
    "p.age is missing",  # required: always present
    "p.opt is missing and p.opt > 3",
    "p.opt is present and not (p.opt < 5) and p.opt < 5",
    "not (p.opt >= 5 or p.opt is missing) and p.opt > 7",
    "p.grade > 4",  # the form's max
    "p.grade < 1",
    "p.flag and not p.flag",
    "p.maybe == true and p.maybe == false",
    'p.kind == "a" and p.kind == "b"',
    'p.kind != "a" and p.kind != "b" and p.kind != "c"',  # the enum has nothing left
    'p.opt_kind not in ["a", "b"]',
    'p.kind in ["a", "b"] and p.kind not in list ab',
    'p.text == "x" and p.text != "x"',
    'p.day < "2024-01-02" and p.day >= "2024-01-02"',
    'p.day > "2024-01-01" and p.day < "2024-01-02"',  # dates are whole days
    "p.day < p.other_day and p.other_day < p.day",
    "p.day < p.other_day and p.day >= p.other_day",
    "p.age < p.age",
    'any p.tags in ["x"] and all p.tags not in ["x"]',
    'p.tags contains "x" and no p.tags in ["x"]',
    'p.text contains "x" and not (p.text contains "x")',
    "(p.age < 1 and p.age > 1) or (p.flag and not p.flag)",
]
MAY = [
    "not (p.opt < 5)",  # true when p.opt is missing
    "not p.maybe and p.maybe is missing",
    "p.amount > 1 and p.amount < 2",  # numbers are not whole steps
    "p.age >= 2 and p.age <= 2",
    "p.age > 16 and p.age < 18 and not (p.age != 17)",
    'p.kind != "a" and p.kind != "b"',
    'p.opt_kind not in ["a"]',
    'p.day > "2024-01-01" and p.day < "2024-01-03"',
    "p.day <= p.other_day and p.day >= p.other_day",
    'all p.tags in ["x"] and no p.tags in ["x"]',  # an empty list
    'p.text contains "x" and not (p.text contains "y")',
    "p.age == p.age",
    "p.grade >= 4",
]


class TestNeverHolds:
    @pytest.mark.parametrize("source", NEVER)
    def test_contradictions_are_found(self, logic_item: Item, source: str) -> None:
        assert never_holds(logic_item, parse(source)) is True

    @pytest.mark.parametrize("source", MAY)
    def test_satisfiable_conditions_are_not_flagged(self, logic_item: Item, source: str) -> None:
        assert never_holds(logic_item, parse(source)) is False

    def test_gives_up_beyond_the_size_limit(self, logic_item: Item) -> None:
        """2**9 consistent conjuncts is over the limit: no claim either way."""
        source = " and ".join(
            f'(p.text contains "a{i}" or p.tags contains "b{i}")' for i in range(9)
        )
        assert never_holds(logic_item, parse(source)) is None

    def test_pruning_keeps_contradictory_products_small(self, logic_item: Item) -> None:
        """2**9 conjuncts before pruning, but p.age and p.opt can each equal only one value."""
        source = " and ".join(f"(p.age == {i} or p.opt == {i})" for i in range(9))
        assert never_holds(logic_item, parse(source)) is True
        source = " and ".join(f"(p.age == {i} or p.opt == {i})" for i in range(2))
        assert never_holds(logic_item, parse(source)) is False
