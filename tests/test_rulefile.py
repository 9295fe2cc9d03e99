"""Rule files: the shipped ones load cleanly; broken ones report every problem, located."""

from __future__ import annotations

from pathlib import Path

import pytest

from miaopi_server.decision.catalog import load_catalog
from miaopi_server.errors import RuleFileError
from miaopi_server.rules.directory import compile_directory
from tests.support import RULESETS, rule_file

GOOD = rule_file("""\
    form:
      person.age: {type: integer, label: 年龄, required: true}
      person.tags: {type: string_list}
    materials:
      - {id: form, name: 申请表, need: required}
    materials_basis: art1
    rules:
      - id: old
        when: person.age >= 60
        outcome: APPROVE
        message: 符合条件
        basis: art1
    """)


def write(tmp_path: Path, text: str, name: str = "t.yaml") -> Path:
    root = tmp_path / "rules"
    root.mkdir(exist_ok=True)
    (root / name).write_text(text, encoding="utf-8")
    return root


def codes(root: Path) -> list[tuple[int, int, str]]:
    _, diags = compile_directory(root)
    return [(d.line, d.column, d.code) for d in diags if d.severity == "error"]


class TestShipped:
    def test_shipped_rulesets_load_without_problems(self):
        """Every shipped rule file compiles with no error and no warning."""
        compiled, diags = compile_directory(RULESETS)
        assert diags == []
        assert sorted(c.item.code for c in compiled) == [
            "BA00027000",
            "GF00012000",
            "GF00034001",
            "XK00051000",
        ]

    def test_digest_covers_shared_lists(self, tmp_path):
        """Changing a shared list the item uses changes the item's digest."""
        import shutil

        root = tmp_path / "r"
        shutil.copytree(RULESETS, root)
        before = {c.item.code: c.item.digest for c in compile_directory(root)[0]}
        lists = root / "lists" / "business_scope.yaml"
        lists.write_text(
            lists.read_text(encoding="utf-8").replace("理发服务, ", ""), encoding="utf-8"
        )
        after = {c.item.code: c.item.digest for c in compile_directory(root)[0]}
        assert before["XK00051000"] != after["XK00051000"]
        assert before["GF00012000"] == after["GF00012000"]


class TestDiagnostics:
    def test_good_file(self, tmp_path):
        """The baseline test file is clean."""
        assert codes(write(tmp_path, GOOD)) == []

    def test_yaml_syntax_error_located(self, tmp_path):
        """Broken YAML is reported at its line and column."""
        assert codes(write(tmp_path, GOOD.replace("name: 测试事项", "name: [测试事项"))) == [
            (5, 7, "MP100")
        ]

    def test_expression_error_points_into_condition(self, tmp_path):
        """A syntax error inside a condition points at the exact column in the file."""
        root = write(tmp_path, GOOD.replace("when: person.age >= 60", "when: person.age => 60"))
        assert codes(root) == [(19, 22, "MP202")]

    def test_every_problem_reported_at_once(self, tmp_path):
        """Unknown keys, bad types, undefined references are all collected in one pass."""
        text = (
            GOOD.replace('version: "1"', 'version: "1"\ncolour: red')
            .replace("type: integer", "type: int")
            .replace("basis: art1\n", "basis: art9\n")
            .replace("outcome: APPROVE", "outcome: OK")
        )
        assert sorted(codes(write(tmp_path, text))) == [
            (9, 1, "MP102"),
            (13, 22, "MP105"),
            (17, 18, "MP320"),
            (21, 14, "MP105"),
            (23, 12, "MP320"),
        ]
        diags = compile_directory(write(tmp_path, text))[1]
        messages = [str(d) for d in diags]
        assert any("colour" in m for m in messages)
        assert any("'int'" in m for m in messages)
        assert any("OK" in m for m in messages)

    def test_unknown_field_and_list(self, tmp_path):
        """Conditions naming a field not in the form or an undefined list are errors."""
        text = GOOD.replace(
            "when: person.age >= 60", "when: person.height > 1 or any person.tags in list nope"
        )
        assert codes(write(tmp_path, text)) == [(19, 11, "MP301"), (19, 51, "MP302")]

    def test_non_finite_output_refused(self, tmp_path):
        """.inf / .nan have no JSON form: no decision could carry or record them."""
        text = GOOD + (
            "    outputs:\n"
            "      amount: .inf\n"
            "      band:\n"
            "        - {when: person.age >= 80, value: .nan}\n"
            "        - {value: {nested: [1, -.inf]}}\n"
        )
        assert codes(write(tmp_path, text)) == [
            (24, 15, "MP105"),
            (26, 43, "MP105"),
            (27, 19, "MP105"),
        ]

    @pytest.mark.parametrize(
        "value",
        [
            "{1: a}",  # passed lint and the gate; every Decide firing it was INTERNAL, recorded
            "{null: a}",
            "!!binary aGVsbG8=",  # reached the window as [104.0, 101.0, 108.0, 108.0, 111.0]
            "!!set {a}",
            "9007199254740993",  # reached the window as 9007199254740992
            "-1.0e+16",
            "9" * 5000,  # MP199: int() refuses more than 4,300 digits
            "{a: " * 16 + "[1]" + "}" * 16,  # the window's client could not read the response
            "[" * 300 + "1" + "]" * 300,  # MP199: RecursionError building the value
        ],
    )
    def test_output_a_decision_cannot_carry_refused(self, tmp_path, value):
        """An output value with no faithful proto3 JSON / Struct form is MP105 at the value,
        not MP199, and not a decision the window cannot get."""
        text = GOOD + f"    outputs: {{amount: [{{value: {value}}}]}}\n"
        root = write(tmp_path, text)
        assert codes(root) == [(23, 32, "MP105")]
        (message,) = [d.message for d in compile_directory(root)[1] if d.code == "MP105"]
        assert "输出 amount 的值" in message

    def test_output_values_within_bounds_load(self, tmp_path):
        """The bounds leave room: 10^15, a date, text, and lists and mappings 16 deep."""
        text = GOOD + (
            "    outputs:\n"
            "      amount: 1000000000000000\n"
            "      start: 2026-01-01\n"
            "      table: " + "{a: " * 15 + "[1, x]" + "}" * 15 + "\n"
        )
        assert codes(write(tmp_path, text)) == []

    @pytest.mark.parametrize(
        ("written", "days"), [("0x14", 20), ("0b10100", 20), ("1:30", 90), ("024", 20), ("2_0", 20)]
    )
    def test_yaml_integer_forms_read_as_yaml_reads_them(self, tmp_path, written, days):
        """A time limit written 0x14, 0b10100 or 1:30 was MP199 (int() on the scalar's text);
        024, YAML 1.1's octal 20, was read as 24 where the schema check and editors read 20."""
        text = GOOD.replace("statutory_working_days: 5", f"statutory_working_days: {written}")
        root = write(tmp_path, text)
        assert codes(root) == []
        (c,), _ = compile_directory(root)
        assert c.item.statutory_days == days

    @pytest.mark.parametrize(
        ("field", "where", "code"),
        [
            ("{type: integer, max: .inf}", (13, 37), "MP105"),  # was MP199: float(".inf")
            ("{type: number, min: .nan}", (13, 36), "MP105"),
            ("{type: integer, max: 1:30.5}", None, None),  # YAML's 5430.5, as editors read it
            ("{type: string, max_length: " + "9" * 5000 + "}", (13, 43), "MP105"),  # was MP199
        ],
    )
    def test_field_bounds_yaml_cannot_turn_into_numbers(self, tmp_path, field, where, code):
        """Bounds YAML reads as .inf / .nan or as an integer Python will not convert are located
        errors, not MP199."""
        text = GOOD.replace("  person.tags: {type: string_list}", f"  person.tags: {field}")
        assert codes(write(tmp_path, text)) == ([] if where is None else [(*where, code)])

    @pytest.mark.parametrize(
        "when",
        [
            "person.age >= " + "9" * 5000,
            "person.born <= application.date - " + "9" * 5000 + " days",
            "person.born <= application.date - 1" + "0" * 16 + " days",
        ],
    )
    def test_huge_numbers_in_conditions_are_mp210(self, tmp_path, when):
        """A literal or period of more than 4,300 digits was MP199 (ValueError from int()); like
        any number beyond 10^15 it is MP210, located at the number (a period too)."""
        text = GOOD.replace("  person.tags: {type: string_list}", "  person.born: {type: date}")
        text = text.replace("when: person.age >= 60", f"when: {when}")
        assert [c for *_, c in codes(write(tmp_path, text))] == ["MP210"]

    def test_duplicate_rule_id(self, tmp_path):
        """Two rules with one id are refused."""
        rule = GOOD[GOOD.index("  - id: old") :]
        assert codes(write(tmp_path, GOOD + rule)) == [(23, 9, "MP106")]

    def test_duplicate_item_code(self, tmp_path):
        """Two files declaring one item code are refused."""
        root = write(tmp_path, GOOD)
        write(tmp_path, GOOD, "copy.yaml")
        assert [c for _, _, c in codes(root)] == ["MP108"]

    def test_chinese_messages_display(self, tmp_path):
        """Diagnostics keep Chinese text readable (no escapes)."""
        text = GOOD.replace("type: 行政给付", "type: 行政许可证")
        diags = compile_directory(write(tmp_path, text))[1]
        assert any("行政许可证" in str(d) for d in diags)

    def test_load_catalog_refuses_errors(self, tmp_path):
        """A catalog never loads half a directory: any error refuses the whole set."""
        root = write(tmp_path, GOOD)
        write(tmp_path, GOOD.replace("T0001", "T0002").replace(">= 60", ">= "), "b.yaml")
        with pytest.raises(RuleFileError) as info:
            load_catalog(root)
        assert [d.code for d in info.value.diagnostics] == ["MP204"]


class TestLocationsAndDefaults:
    @pytest.mark.parametrize(
        "when",
        [
            ">-\n          person.age >= 60\n          and person.agee > 1",
            "|\n          person.age >= 60\n          and person.agee > 1",
            "person.age >= 60\n          and person.agee > 1",
        ],
    )
    def test_multi_line_condition_errors_located(self, tmp_path, when):
        """Errors inside folded, literal and plain multi-line conditions point at the spot."""
        root = write(tmp_path, GOOD.replace("when: person.age >= 60", f"when: {when}"))
        line = 21 if when[0] in ">|" else 20
        assert codes(root) == [(line, 15, "MP301")]

    def test_missing_item_keys_reported_not_crashing(self, tmp_path):
        """A catalogue element left out is MP103, not a crash."""
        assert [c for _, _, c in codes(write(tmp_path, GOOD.replace("  code: T0001\n", "")))] == [
            "MP103"
        ]

    @pytest.mark.parametrize(
        ("field", "ok"),
        [
            ("{type: date, default: 2024-01-01}", True),
            ("{type: date, default: 'soon'}", False),
            ("{type: enum, values: {a: A}, default: b}", False),
            ("{type: enum, values: {a: A}, default: a}", True),
            ("{type: integer, default: 2.5}", False),
            ("{type: integer, min_length: 3}", False),
            ("{type: string, values: {a: A}}", False),
        ],
    )
    def test_field_definitions_checked(self, tmp_path, field, ok):
        """Defaults must be valid values; type-specific keys only on their types."""
        text = GOOD.replace("  person.tags: {type: string_list}", f"  person.tags: {field}")
        assert (codes(write(tmp_path, text)) == []) == ok
