"""The compiled validator (decision/validator.py) and its generated code
(decision/validator_code.py) against the reference (validate.validate_case): on generated valid
cases and on cases broken in every way we can think of, all must give the same Case (same
values in the same order, derived facts, materials, as-of date) or the same CaseInvalid (same
fields, same messages, same order); the generated code and `Validator.plain` accept no refused
case, and what they accept is the reference's Case. And the fast paths must really be taken:
every generated valid case of a shipped item is accepted by the generated code, without the
reference; rule files whose field names, enum values and material ids are hostile
(hypothesis) still get generated code, which agrees with the reference."""

from __future__ import annotations

import copy
import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from miaopi_server.decision.catalog import Catalog, load_catalog
from miaopi_server.decision.validate import Case, asked_as_of, validate_case
from miaopi_server.decision.validator import Validator
from miaopi_server.errors import CaseInvalid
from miaopi_server.rules.loader import load_rule_file
from miaopi_server.rules.model import Item
from tests import case_generator
from tests.support import (
    BUSINESS,
    BUSINESS_MATERIALS,
    DEVICE,
    DEVICE_MATERIALS,
    DISABILITY,
    DISABILITY_MATERIALS,
    NASTY,
    RULESETS,
    SENIOR,
    SENIOR_MATERIALS,
    credit_code,
    mutate,
    resident_id,
    rule_file,
)

TODAY = dt.date(2026, 11, 20)

# Every field type, a subject nested three deep, defaults (a list one too), bounds, lengths,
# conditional fields and a conditional material.
TYPED = rule_file("""\
    form:
      p.name: {type: string, required: true, min_length: 2, max_length: 8}
      p.id: {type: resident_id, required: true}
      p.region: {type: region_code}
      p.count: {type: integer, min: 0, exclusive_min: true, max: 100}
      p.share: {type: number, min: -1.5, max: 2.5, default: 0}
      p.flag: {type: boolean, default: false}
      p.kind: {type: enum, values: {a: 甲, b: 乙}, default: a}
      p.tags: {type: string_list, min_items: 0, max_length: 4, default: []}
      p.when: {type: date}
      org.unit.code: {type: credit_code}
      org.unit.note: {type: string, required_when: p.kind == "b", absent_when: p.flag}
      application.date: {type: date}
    derived:
      p.age: {function: age, from: p.id}
      org.unit.kind: {function: credit_code_kind, from: org.unit.code}
    materials:
      - {id: id_card, name: 身份证, need: required}
      - {id: extra, name: 补充材料, need: required, when: p.flag}
    materials_basis: art1
    rules:
      - id: adult
        when: p.age >= 18
        outcome: APPROVE
        message: 成年
        basis: art1
    """)

PLAIN_TYPED = {
    "p": {
        "name": "张三",
        "id": resident_id("1980-02-29"),
        "region": "440605",
        "count": 3,
        "share": 1.5,
        "flag": False,
        "kind": "a",
        "tags": ["甲", "乙"],
        "when": "2024-02-29",
    },
    "org": {"unit": {"code": credit_code("91440605MA4UABCDE")}},
    "application": {"date": "2026-11-20"},
}

# Values near every edge a check has, plus the suite's hostile values.
EDGES: list[Any] = [
    *NASTY,
    "张",
    "张三四五六七八九",
    "张三四五六七八九十",
    " 张三",
    "张三 ",
    "张 三",
    "\u3000",
    "\u3164\u3164",
    "a\u200bb",
    "Ａｂ",
    "(张三)",
    "张三（李）",
    "x\u0301",
    "2026-11-20",
    "2026-02-29",
    "1899-12-31",
    "2200-01-01",
    "1900-01-01",
    "２０２４-０１-０１",
    3.0,
    3.5,
    0,
    0.0,
    100,
    100.5,
    101,
    -1.5,
    -1.6,
    2.5,
    1e15,
    1e16,
    "a",
    "b",
    "c",
    ["a"],
    ["a", "b c d e"],
    ["", "a"],
    [" a"],
    ["a"] * 5,
    "440605",
    "990605",
    "44060",
    resident_id("1980-01-01"),
    resident_id("2030-01-01"),
    resident_id("1980-01-01")[:-1] + "0",
    resident_id("1980-01-01").lower(),
    resident_id("1849-12-31"),
    resident_id("1850-01-01"),
    resident_id("2026-11-20"),
    resident_id("2026-11-21"),
    resident_id("1980-01-01")[:-1] + "X",
    resident_id("1980-01-01")[:6] + "19800230" + resident_id("1980-01-01")[14:],
    "４" + resident_id("1980-01-01")[1:],
    credit_code("91440605MA4UABCDE"),
    "91440605MA4UABCDE0",
    "91440605MA4UABCDI0",
]


def outcome(run: Any) -> tuple[str, Any]:
    """('case', its content in order) or ('invalid', every (field, message) in order)."""
    try:
        case: Case = run()
    except CaseInvalid as exc:
        return "invalid", [(v.field, v.description) for v in exc.violations]
    return "case", (list(case.values.items()), case.derived, case.materials, case.as_of)


def compare(item: Item, validator: Validator, facts: Any, materials: Any) -> tuple[str, Any]:
    asked = asked_as_of(facts, TODAY)
    want = outcome(lambda: validate_case(item, copy.deepcopy(facts), materials, TODAY))
    got = outcome(lambda: validator(copy.deepcopy(facts), materials, asked))
    assert got == want, (facts, materials)
    fast = validator.plain(copy.deepcopy(facts), materials, asked)
    generated = validator.generated
    code = generated(copy.deepcopy(facts), materials, asked) if generated else None
    if want[0] == "invalid":
        assert fast is None, ("the fast path accepted a refused case", facts, materials)
        assert code is None, ("the generated code accepted a refused case", facts, materials)
        return want
    reference = validate_case(item, copy.deepcopy(facts), materials, TODAY)
    for accepted in (fast, code):
        if accepted is not None:
            assert outcome(lambda a=accepted: a) == want
            assert accepted == reference and vars(accepted) == vars(reference)
    return want


def broken(rng: random.Random, facts: dict[str, Any], item: Item) -> dict[str, Any]:
    """A copy with one to three form values (or whole subjects) replaced by edge values,
    removed, or with keys the form does not have."""
    out = copy.deepcopy(facts)
    for _ in range(rng.randrange(1, 4)):
        r = rng.random()
        if r < 0.2:
            out = mutate(rng, out)
            continue
        path = rng.choice([*item.fields, "p.zzz", "application.date"]).split(".")
        node = out
        for p in path[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                break
            node = nxt
        else:
            if r < 0.3:
                node.pop(path[-1], None)
            else:
                node[path[-1]] = rng.choice(EDGES)
    return out


def materials_variant(rng: random.Random, materials: list[str]) -> Any:
    r = rng.random()
    if r < 0.7:
        return list(materials)
    if r < 0.8:
        return tuple(materials)
    return rng.choice([[], ["zzz"], [*materials, 3], [*materials, ["x"]], "id_card", None])


@pytest.fixture(scope="module")
def shipped() -> Any:
    catalog = load_catalog(RULESETS)
    yield catalog
    catalog.close()


@pytest.fixture(scope="module")
def typed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root: Path = tmp_path_factory.mktemp("typed")
    (root / "t.yaml").write_text(TYPED, encoding="utf-8")
    catalog = load_catalog(root)
    yield catalog
    catalog.close()


def loaded(catalog: Catalog, code: str) -> tuple[Item, Validator]:
    version = catalog.select(code, {}, TODAY)
    return version.item, version.validator


@pytest.mark.parametrize("code", case_generator.ITEMS)
def test_valid_cases_take_the_fast_path_and_agree(shipped: Catalog, code: str) -> None:
    item, validator = loaded(shipped, code)
    cases = case_generator.generate(code, 400, seed=17)
    for facts, materials in cases:
        assert compare(item, validator, facts, materials)[0] == "case"
        asked = asked_as_of(facts, TODAY)
        assert validator.plain(facts, materials, asked) is not None, facts
        assert validator.generated is not None
        assert validator.generated(facts, materials, asked) is not None, facts


@pytest.mark.parametrize("code", case_generator.ITEMS)
def test_broken_cases_agree(shipped: Catalog, code: str) -> None:
    item, validator = loaded(shipped, code)
    rng = random.Random(code)
    kinds = set()
    for facts, materials in case_generator.generate(code, 600, seed=23):
        kinds.add(
            compare(item, validator, broken(rng, facts, item), materials_variant(rng, materials))[0]
        )
    assert kinds == {"case", "invalid"}  # both sides of the line were exercised


def test_every_field_type_agrees(typed: Catalog) -> None:
    item, validator = loaded(typed, "T0001")
    assert compare(item, validator, PLAIN_TYPED, ["id_card"])[0] == "case"
    assert validator.plain(PLAIN_TYPED, ["id_card"], asked_as_of(PLAIN_TYPED, TODAY))
    assert validator.generated is not None
    assert validator.generated(PLAIN_TYPED, ["id_card"], asked_as_of(PLAIN_TYPED, TODAY))
    rng = random.Random(5)
    kinds: dict[str, int] = {}
    for _ in range(3000):
        facts = broken(rng, PLAIN_TYPED, item)
        kind = compare(item, validator, facts, materials_variant(rng, ["id_card"]))[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    assert min(kinds.get("case", 0), kinds.get("invalid", 0)) > 100, kinds


def with_value(facts: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(facts)
    *parents, leaf = path.split(".")
    node = out
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value
    return out


BASELINES = [
    ("T0001", PLAIN_TYPED, ["id_card"]),
    ("GF00012000", SENIOR, SENIOR_MATERIALS),
    ("GF00034001", DISABILITY, DISABILITY_MATERIALS),
    ("XK00051000", BUSINESS, BUSINESS_MATERIALS),
    ("BA00027000", DEVICE, DEVICE_MATERIALS),
]


@pytest.mark.parametrize(("code", "base", "materials"), BASELINES, ids=[b[0] for b in BASELINES])
def test_each_edge_value_in_each_field_agrees(
    shipped: Catalog, typed: Catalog, code: str, base: dict[str, Any], materials: list[str]
) -> None:
    """One change at a time, so no other fault can hide what the fast path does with it."""
    item, validator = loaded(typed if code == "T0001" else shipped, code)
    assert compare(item, validator, base, materials)[0] == "case"
    kinds = set()
    for path in [*item.fields, "p.zzz"]:
        for value in EDGES:
            kinds.add(compare(item, validator, with_value(base, path, value), materials)[0])
    assert kinds == {"case", "invalid"}


def test_conditions_and_defaults_agree(typed: Catalog) -> None:
    item, validator = loaded(typed, "T0001")
    for kind in ("a", "b", None):
        for flag in (True, False, None):
            for note in ("备注", None):
                facts = copy.deepcopy(PLAIN_TYPED)
                for key, value in (("kind", kind), ("flag", flag)):
                    if value is None:
                        facts["p"].pop(key)
                    else:
                        facts["p"][key] = value
                if note is not None:
                    facts["org"]["unit"]["note"] = note
                for materials in (["id_card"], ["id_card", "extra"]):
                    compare(item, validator, facts, materials)


def test_no_application_date_is_decided_as_of_today(typed: Catalog) -> None:
    item, validator = loaded(typed, "T0001")
    facts = copy.deepcopy(PLAIN_TYPED)
    del facts["application"]
    kind, (values, *_, as_of) = compare(item, validator, facts, ["id_card"])
    assert kind == "case" and as_of == TODAY
    assert dict(values)["application.date"] == TODAY.isoformat()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)


@given(
    changes=st.dictionaries(
        st.sampled_from(["p", "org", "application", "zzz"]),
        st.dictionaries(
            st.sampled_from(["name", "count", "share", "tags", "unit", "date", "kind", "x"]),
            json_values,
            max_size=3,
        )
        | json_values,
        max_size=3,
    )
)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_arbitrary_json_agrees(typed: Catalog, changes: dict[str, Any]) -> None:
    item, validator = loaded(typed, "T0001")
    facts = copy.deepcopy(PLAIN_TYPED)
    for subject, value in changes.items():
        if isinstance(value, dict) and isinstance(facts.get(subject), dict):
            facts[subject].update(value)
        else:
            facts[subject] = value
    compare(item, validator, facts, ["id_card"])


def test_keys_in_another_order_agree(typed: Catalog) -> None:
    """The generated code reads keys in the form's order; the case's values still come out
    in the order of the case's keys, as the reference gives them."""
    item, validator = loaded(typed, "T0001")
    facts = {
        "application": PLAIN_TYPED["application"],
        "org": PLAIN_TYPED["org"],
        "p": dict(reversed(PLAIN_TYPED["p"].items())),
    }
    asked = asked_as_of(facts, TODAY)
    assert validator.generated is not None
    assert validator.generated(facts, ["id_card"], asked) is not None
    assert compare(item, validator, facts, ["id_card"])[0] == "case"
    assert list(validator.generated(facts, ["id_card"], asked).values)[:3] == [
        "application.date",
        "org.unit.code",
        "p.when",
    ]


# Names a rule file may give (loader: a letter or _, then letters, digits, _), chosen to
# collide with what generated code could hold: Python keywords and builtins, the generated
# function's own locals and constants, dunders, non-ASCII letters Python would fold.
HOSTILE_NAMES = [
    "def",
    "return",
    "None",
    "True",
    "lambda",
    "import",
    "__import__",
    "__class__",
    "exec",
    "eval",
    "facts",
    "materials",
    "asked",
    "values",
    "derived",
    "date",
    "as_of",
    "keys",
    "count",
    "case",
    "new",
    "setattr_",
    "Case",
    "k0",
    "v0",
    "e0",
    "s1",
    "p8",
    "d3",
    "index3",
    "orders2",
    "_in_order",
    "age_on",
    "ﬁle",
    "ℌ",
    "Ω",
    "名字",
    "x" * 60,
]
names = st.sampled_from(HOSTILE_NAMES) | st.from_regex(r"[^\W\d]\w{0,8}", fullmatch=True)
# Enum values and defaults: any text, quotes, backslashes and line breaks included.
texts = st.text(min_size=1, max_size=12)


@given(
    subject=names,
    fields=st.lists(names, min_size=4, max_size=4, unique=True),
    enum_values=st.lists(texts, min_size=2, max_size=3, unique=True),
    material=names,
)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_hostile_rule_file_names_agree(
    tmp_path_factory: pytest.TempPathFactory,
    subject: str,
    fields: list[str],
    enum_values: list[str],
    material: str,
) -> None:
    """Whatever names and values a rule file holds, the generated code is built from them as
    constants (never as source text) and decides exactly as the reference."""
    s, (name, kind, count, number) = subject, fields
    q = json.dumps  # a JSON string is a YAML string, whatever it holds
    first, second = (q(v) for v in enum_values[:2])
    enum = f"{{type: enum, values: {{{first}: 甲, {second}: 乙}}, default: {first}}}"
    text = rule_file(f"""\
        form:
          {q(f"{s}.{name}")}: {{type: string, required: true}}
          {q(f"{s}.{kind}")}: {enum}
          {q(f"{s}.{count}")}: {{type: integer, min: 0, default: 1}}
          {q(f"{s}.{number}")}: {{type: resident_id}}
          fixed.flag: {{type: boolean, default: false}}
        derived:
          fixed.age: {{function: age, from: {q(f"{s}.{number}")}}}
        materials:
          - {{id: {q(material)}, name: 材料, need: required}}
        materials_basis: art1
        rules:
          - id: r1
            when: fixed.flag
            outcome: APPROVE
            message: 是
            basis: art1
        """)
    root = tmp_path_factory.mktemp("hostile")
    path = root / "t.yaml"
    path.write_text(text, encoding="utf-8")
    item, diagnostics = load_rule_file(path, root, {})
    assume(item is not None and not [d for d in diagnostics if d.severity == "error"])
    assert item is not None
    validator = Validator(item)
    assert validator.generated is not None
    facts = {
        s: {name: "张三", kind: enum_values[1], count: 3, number: resident_id("1950-01-02")},
        "application": {"date": "2026-11-20"},
    }
    asked = asked_as_of(facts, TODAY)
    # Valid unless the enum value is one no enum accepts (a control character, say).
    if compare(item, validator, facts, [material])[0] == "case":
        assert validator.generated(facts, [material], asked) is not None
    else:
        assert item.type_of(item.fields[f"{s}.{kind}"]).problem(
            item.fields[f"{s}.{kind}"], enum_values[1]
        )
    rng = random.Random(f"{s}.{name}")
    for _ in range(20):
        compare(item, validator, broken(rng, facts, item), materials_variant(rng, [material]))
