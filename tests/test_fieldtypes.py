"""Field types: every registered type is complete everywhere it shows up (proto enum, the gRPC
conversion, the rule-file schema, docs/RULES.md, the condition compiler, validation), and
registering a type is all it takes for rule files, validation and conditions to use it.

Adding a field type: one FieldType in rules/fieldtypes.py, its line in SAMPLES below, its
proto enum value, and the schema and docs rows these tests print when they are missing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from miaopi.v1 import approval_pb2 as pb
from miaopi_server.decision.decide import decide
from miaopi_server.decision.engine import Engine
from miaopi_server.decision.validate import asked_as_of, validate_case
from miaopi_server.edge import convert
from miaopi_server.errors import CaseInvalid
from miaopi_server.lang.compiler import Compares
from miaopi_server.rules.compile import compile_item, field_specs
from miaopi_server.rules.fieldtypes import (
    FIELD_TYPES,
    OPTIONS,
    FieldType,
    FieldTypes,
    UnknownFieldType,
    ValueRejected,
    parse_date,
)
from miaopi_server.rules.loader import load_rule_file
from miaopi_server.rules.model import Field, Item
from miaopi_server.rules.schema import rulefile_schema
from tests.support import ROOT, credit_code, resident_id, rule_file

TODAY = dt.date(2026, 11, 20)


@dataclass(frozen=True)
class Sample:
    good: Any  # a value a case may send
    keys: str = ""  # extra keys the field needs in a rule file (YAML flow mapping entries)


# One good value per registered type (test_every_type_has_a_sample fails on a new type).
SAMPLES = {
    "string": Sample("张三"),
    "integer": Sample(3),
    "number": Sample(2.5),
    "boolean": Sample(True),
    "date": Sample("2024-02-29"),
    "enum": Sample("b", "values: {a: 甲, b: 乙}"),
    "string_list": Sample(["经营", "服务"]),
    "region_code": Sample("440605"),
    "resident_id": Sample(resident_id("1950-03-01")),
    "credit_code": Sample(credit_code("93440605BMC03GH60")),
}


def holds_for(compares: Compares, good: Any) -> str:
    """A condition on `t.x` that holds when it is `good`, using the comparisons of its class."""
    return {
        Compares.NUMBER: lambda: f"t.x >= {json.dumps(good)}",
        Compares.TEXT: lambda: f"t.x == {json.dumps(good, ensure_ascii=False)}",
        Compares.CHOICE: lambda: f"t.x in [{json.dumps(good, ensure_ascii=False)}]",
        Compares.DATE: lambda: f't.x <= "{good}"',
        Compares.BOOLEAN: lambda: "t.x",
        Compares.TEXT_LIST: lambda: f"t.x contains {json.dumps(good[0], ensure_ascii=False)}",
    }[compares]()


def typed_rule_file(kind: str, keys: str, when: str) -> str:
    extra = f", {keys}" if keys else ""
    return rule_file(f"""\
        form:
          t.x: {{type: {kind}{extra}}}
        materials: []
        materials_basis: art1
        rules:
          - id: holds
            when: '{when}'
            outcome: APPROVE
            message: 符合条件
            basis: art1
        """)


def load(tmp_path: Path, text: str, types: FieldTypes = FIELD_TYPES) -> tuple[Item | None, list]:
    path = tmp_path / "t.yaml"
    path.write_text(text, encoding="utf-8")
    return load_rule_file(path, tmp_path, {}, types)


def decide_outcome(item: Item, facts: dict[str, Any]) -> str:
    compiled, diags = compile_item(item)
    assert diags == []
    engine = Engine()
    handle = engine.register(item.code, compiled.conditions)
    try:
        return decide(compiled, handle, engine, facts, [], asked_as_of(facts, TODAY)).outcome
    finally:
        engine.unregister(handle)


ALL = [pytest.param(t, id=t.name) for t in FIELD_TYPES]


class TestRegistry:
    def test_every_type_has_a_sample(self) -> None:
        assert set(SAMPLES) == set(FIELD_TYPES.names)

    def test_unknown_type_raises_at_once(self) -> None:
        with pytest.raises(UnknownFieldType, match="mobile_phone"):
            FIELD_TYPES["mobile_phone"]
        assert "mobile_phone" not in FIELD_TYPES

    def test_an_item_field_of_an_unregistered_type_raises_in_validation(
        self, tmp_path: Path
    ) -> None:
        """Validation looks a type up; it never falls back to accepting any text."""
        item, _ = load(tmp_path, typed_rule_file("string", "", 't.x == "a"'))
        assert item is not None
        broken = dataclasses.replace(item, fields={"t.x": Field("t.x", "mobile_phone")})
        with pytest.raises(UnknownFieldType):
            validate_case(broken, {"t": {"x": "13800138000"}}, [], TODAY)

    def test_a_name_is_registered_once(self) -> None:
        with pytest.raises(ValueError, match="twice"):
            FIELD_TYPES.extended(FIELD_TYPES["string"])

    def test_options_are_known_keys(self) -> None:
        with pytest.raises(ValueError, match="unknown options"):
            FieldType("x", Compares.TEXT, "X", {"type": "string"}, ("colour",), "x", _accept)


class TestEveryTypeIsComplete:
    @pytest.mark.parametrize("t", ALL)
    def test_proto_enum_has_it(self, t: FieldType) -> None:
        assert t.pb_name in pb.FieldType.keys()  # noqa: SIM118 (an enum wrapper)

    def test_every_proto_value_is_registered(self) -> None:
        declared = set(pb.FieldType.keys()) - {"FIELD_TYPE_UNSPECIFIED"}
        assert declared == {t.pb_name for t in FIELD_TYPES}
        assert len({t.pb_name for t in FIELD_TYPES}) == len(FIELD_TYPES)

    @pytest.mark.parametrize("t", ALL)
    def test_convert_maps_it(self, t: FieldType) -> None:
        msg = convert.form_field(Field("t.x", t.name))
        assert msg.type == pb.FieldType.Value(t.pb_name) != pb.FIELD_TYPE_UNSPECIFIED

    @pytest.mark.parametrize("t", ALL)
    def test_compiler_compares_it(self, t: FieldType, tmp_path: Path) -> None:
        """A condition using the comparisons of its class compiles, and decides."""
        sample = SAMPLES[t.name]
        item, diags = load(
            tmp_path, typed_rule_file(t.name, sample.keys, holds_for(t.compares, sample.good))
        )
        assert diags == [] and item is not None
        assert field_specs(item)["t.x"].compares is t.compares
        assert decide_outcome(item, {"t": {"x": sample.good}}) == "APPROVE"

    @pytest.mark.parametrize("t", ALL)
    def test_validation_rejects_a_value_of_the_wrong_json_type(self, t: FieldType) -> None:
        """No type accepts anything: every JSON value its schema rules out is rejected."""
        f = Field("t.x", t.name, enum=(("b", "乙"),))
        fits = Draft202012Validator(dict(t.value_schema)).is_valid
        tried = 0
        for value in ("x", 7, 7.5, True, ["x"], {"a": 1}):
            if not fits(value):
                tried += 1
                with pytest.raises(ValueRejected):
                    t.check(f, value, TODAY)
        assert tried >= 3

    @pytest.mark.parametrize("t", ALL)
    def test_validation_accepts_its_sample(self, t: FieldType) -> None:
        f = Field("t.x", t.name, enum=(("b", "乙"),))
        good = SAMPLES[t.name].good
        assert t.problem(f, good) is None
        assert Draft202012Validator(dict(t.value_schema)).is_valid(good)


class TestSchema:
    """rulefile.schema.json is committed (editors and lint read it): it must say what the
    registry says. The expected JSON is in each assertion's message."""

    FIELD = rulefile_schema()["$defs"]["field"]

    def test_type_enum_and_descriptions(self) -> None:
        prop = self.FIELD["properties"]["type"]
        assert prop["enum"] == list(FIELD_TYPES.names)
        assert prop["enumDescriptions"] == [t.doc for t in FIELD_TYPES]

    def test_min_and_max_only_where_the_types_take_them(self) -> None:
        assert FIELD_TYPES.accepting("min") == FIELD_TYPES.accepting("max")
        blocks = [b for b in self.FIELD["allOf"] if "min" in b["then"].get("properties", {})]
        assert len(blocks) == 1
        limited = blocks[0]["if"]["properties"]["type"]["not"]["enum"]
        assert limited == list(FIELD_TYPES.accepting("min"))

    def test_default_value_schema_of_each_type(self) -> None:
        """Each type is named by exactly one `default` block, which gives its value schema."""
        found: dict[str, list[Any]] = {}
        for block in self.FIELD["allOf"]:
            default = block["then"].get("properties", {}).get("default")
            if default is None:
                continue
            named = block["if"]["properties"]["type"]
            for name in named.get("enum", [named.get("const")]):
                found.setdefault(name, []).append(default)
        expected = {t.name: [dict(t.value_schema)] for t in FIELD_TYPES}
        assert found == expected, json.dumps(expected, ensure_ascii=False)

    def test_no_other_list_of_types(self) -> None:
        """Type names appear in the schema only in the places the tests above check."""
        text = json.dumps(self.FIELD, ensure_ascii=False)
        for t in FIELD_TYPES:
            if t.name in ("string", "integer", "number", "boolean", "date", "enum"):
                continue  # also JSON Schema words
            counted = len(re.findall(rf'"{t.name}"', text))
            checked = 1 + 1 + (t.name in FIELD_TYPES.accepting("min"))
            assert counted == checked, t.name


class TestDocs:
    def test_rules_md_lists_every_type(self) -> None:
        """docs/RULES.md's field type table is the registry, row for row."""
        text = (ROOT / "docs" / "RULES.md").read_text(encoding="utf-8")
        table = text.split("| type | value | keys |", 1)[1].split("\n\n", 1)[0]
        rows = [line for line in table.splitlines() if re.match(r"\| `[a-z_]+` \|", line)]
        expected = [
            f"| `{t.name}` | {t.doc} | {', '.join(t.options)} |".replace(" |  |", " | |")
            for t in FIELD_TYPES
        ]
        assert rows == expected, "\n".join(expected)

    def test_options_are_the_loaders_keys(self) -> None:
        from miaopi_server.rules.loader import _FIELD_KEYS

        assert set(OPTIONS) <= _FIELD_KEYS


class TestDates:
    @pytest.mark.parametrize(
        ("text", "day"),
        [
            ("2024-02-29", dt.date(2024, 2, 29)),
            ("2023-02-29", None),
            ("2024-2-9", None),
            ("20240229", None),
            ("２０２４-０２-２９", None),
            ("2024-W01-1", None),
            (" 2024-02-29", None),
        ],
    )
    def test_one_parser(self, text: str, day: dt.date | None) -> None:
        assert parse_date(text) == day

    def test_catalog_and_validation_agree_on_application_date(self, tmp_path: Path) -> None:
        item, _ = load(tmp_path, typed_rule_file("string", "", 't.x == "a"'))
        assert item is not None
        for text in ("2024-02-29", "2023-02-29", "２０２４-０２-２９"):
            facts = {"application": {"date": text}}
            chosen = asked_as_of(facts, TODAY).date
            assert chosen == (parse_date(text) or TODAY)
            try:
                assert validate_case(item, facts, [], TODAY).as_of == chosen
            except CaseInvalid as exc:
                assert parse_date(text) is None
                assert [v.description for v in exc.violations] == ["应为有效日期 YYYY-MM-DD"]

    def test_rule_file_dates_use_it(self, tmp_path: Path) -> None:
        text = typed_rule_file("string", "", 't.x == "a"').replace(
            'version: "1"', 'version: "1"\neffective_from: "2023-02-29"'
        )
        _, diags = load(tmp_path, text)
        assert [(d.code, d.message) for d in diags] == [
            ("MP105", "effective_from 应为日期 YYYY-MM-DD")
        ]


# -- registering a type is enough ------------------------------------------------------------

_MOBILE = re.compile(r"1[3-9]\d{9}")


def _accept(f: Field, value: Any, as_of: dt.date) -> None:
    return None


def _check_mobile_phone(f: Field, value: Any, as_of: dt.date) -> None:
    if not isinstance(value, str):
        raise ValueRejected("应为文字")
    if not _MOBILE.fullmatch(value):
        raise ValueRejected("应为 11 位手机号码")


MOBILE_PHONE = FieldType(
    name="mobile_phone",
    compares=Compares.TEXT,
    pb_name="FIELD_TYPE_MOBILE_PHONE",  # not in the proto: this registry never reaches gRPC
    value_schema={"type": "string"},
    options=(),
    doc="手机号码 / mobile phone number",
    check=_check_mobile_phone,
)
WITH_MOBILE = FIELD_TYPES.extended(MOBILE_PHONE)
MOBILE_RULES = typed_rule_file("mobile_phone", "", 't.x starts with "139"').replace(
    "t.x: {type: mobile_phone}", "t.x: {type: mobile_phone, default: '13800138000'}"
)


class TestRegisteringIsEnough:
    def test_the_standard_registry_refuses_it_at_load(self, tmp_path: Path) -> None:
        _, diags = load(tmp_path, MOBILE_RULES)
        assert [d.code for d in diags] == ["MP105"]
        assert "未知的字段类型 'mobile_phone'" in diags[0].message

    def test_load_compile_validate_decide(self, tmp_path: Path) -> None:
        item, diags = load(tmp_path, MOBILE_RULES, WITH_MOBILE)
        assert diags == [] and item is not None
        assert item.type_of(item.fields["t.x"]) is MOBILE_PHONE
        assert item.fields["t.x"].default == "13800138000"
        assert decide_outcome(item, {"t": {"x": "13912345678"}}) == "APPROVE"
        assert decide_outcome(item, {}) == "MANUAL_REVIEW"  # the default 138... applies
        with pytest.raises(CaseInvalid) as exc:
            validate_case(item, {"t": {"x": "12345"}}, [], TODAY)
        assert [(v.field, v.description) for v in exc.value.violations] == [
            ("facts.t.x", "应为 11 位手机号码")
        ]

    def test_its_default_is_checked_at_load(self, tmp_path: Path) -> None:
        text = MOBILE_RULES.replace("'13800138000'", "'110'")
        _, diags = load(tmp_path, text, WITH_MOBILE)
        assert [(d.code, d.message) for d in diags] == [
            ("MP105", "t.x 的缺省值不可用：应为 11 位手机号码")
        ]

    def test_its_comparisons_are_type_checked(self, tmp_path: Path) -> None:
        text = typed_rule_file("mobile_phone", "", "t.x > 5")
        item, diags = load(tmp_path, text, WITH_MOBILE)
        assert item is not None
        _, diags = compile_item(item)
        assert [d.code for d in diags] == ["MP309"]

    def test_keys_it_does_not_take_are_refused(self, tmp_path: Path) -> None:
        text = typed_rule_file("mobile_phone", "min_length: 3", 't.x == "13912345678"')
        _, diags = load(tmp_path, text, WITH_MOBILE)
        assert [(d.code, d.message) for d in diags] == [
            ("MP105", "min_length 只适用于 string / string_list 字段")
        ]
