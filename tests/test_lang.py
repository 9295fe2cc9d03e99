"""The condition language: parser errors, type errors, and the compiler checked against the
reference semantics on the real durable_rules engine."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from miaopi_server.decision.engine import Engine
from miaopi_server.lang import ast
from miaopi_server.lang.compiler import ALWAYS_KEY, Compares, FieldSpec, compile_condition
from miaopi_server.lang.parser import ExprSyntaxError, parse
from miaopi_server.lang.probes import MISSING, ProbeTable, is_hanzi
from miaopi_server.lang.reference import evaluate
from miaopi_server.rules.compile import PROBES_KEY
from tests.support import unsafe_quantifiers

FIELDS = {
    "a.n": FieldSpec("a.n", "integer", False, compares=Compares.NUMBER),
    "a.m": FieldSpec("a.m", "integer", True, compares=Compares.NUMBER),
    "a.b": FieldSpec("a.b", "boolean", False, compares=Compares.BOOLEAN),
    "a.s": FieldSpec("a.s", "string", False, compares=Compares.TEXT),
    "a.e": FieldSpec("a.e", "enum", True, ("x", "y", "z"), compares=Compares.CHOICE),
    "a.d": FieldSpec("a.d", "date", False, compares=Compares.DATE),
    "a.d2": FieldSpec("a.d2", "date", True, compares=Compares.DATE),
    "a.l": FieldSpec("a.l", "string_list", True, compares=Compares.TEXT_LIST),
}
LISTS = {"words": ("中国", "店", "x"), "letters": ("x", "y")}


def compile_ok(source: str, probes: ProbeTable | None = None) -> dict[str, Any]:
    compiled = compile_condition(parse(source), FIELDS, LISTS, probes or ProbeTable())
    assert compiled.errors == []
    return compiled.condition


class TestParser:
    @pytest.mark.parametrize(
        ("source", "code", "pos"),
        [
            ("a.n = 1", "MP202", 4),
            ("a.n >", "MP204", 5),
            ("", "MP205", 0),
            ("a.n == 1 a.m == 2", "MP204", 9),
            ("(a.n == 1", "MP204", 9),
            ("a.n in [a.m]", "MP207", 8),
            ("a.s is wonderful", "MP204", 7),
            ("a.n == 1 ; drop", "MP201", 9),
            ('a.s == "\\q"', "MP203", 8),
            ("any a.l is missing", "MP206", 8),
            ("a.s contains 5", "MP204", 13),
        ],
    )
    def test_syntax_error_located(self, source, code, pos):
        """Syntax errors carry a stable code and the offset of the problem."""
        with pytest.raises(ExprSyntaxError) as info:
            parse(source)
        assert (info.value.code, info.value.pos) == (code, pos)

    def test_precedence(self):
        """not binds tighter than and, and tighter than or."""
        tree = parse('not a.b and a.m > 1 or a.e == "x"')
        assert isinstance(tree, ast.Or)
        assert isinstance(tree.operands[0], ast.And)
        assert isinstance(tree.operands[0].operands[0], ast.Not)

    def test_chinese_strings_round_trip(self):
        """CJK literals, including Chinese quotes, parse unchanged."""
        tree = parse("a.s contains any of [“中华”, '国际', \"全国\"]")
        assert isinstance(tree, ast.StringTest)
        assert isinstance(tree.words, ast.ListLiteral)
        assert [c.value for c in tree.words.items] == ["中华", "国际", "全国"]

    def test_nothing_is_executed(self):
        """Python-looking text is just an unknown field or a syntax error, never code."""
        for source in ("__import__('os').system('x')", "a.n.__class__ == 1", "exec(1)"):
            try:
                tree = parse(source)
            except ExprSyntaxError:
                continue
            errors = compile_condition(tree, FIELDS, LISTS, ProbeTable()).errors
            assert errors, source


class TestTypeErrors:
    @pytest.mark.parametrize(
        ("source", "code"),
        [
            ("a.zz == 1", "MP301"),
            ("a.n in list nope", "MP302"),
            ('a.n == "7"', "MP303"),
            ('a.e == "w"', "MP304"),
            ("a.n", "MP305"),
            ("a.s is empty", "MP306"),
            ('a.l starts with "x"', "MP307"),
            ("1 == 2", "MP308"),
            ('a.s < "b"', "MP309"),
            ('a.l in ["x"]', "MP311"),
            ('any a.s == "x"', "MP312"),
            ('a.d < "2024-02-30"', "MP303"),
        ],
    )
    def test_type_error(self, source, code):
        """Type and reference errors are reported with a stable code."""
        compiled = compile_condition(parse(source), FIELDS, LISTS, ProbeTable())
        assert [e.code for e in compiled.errors] == [code]


class TestCompilation:
    def test_negation_pushed_down(self):
        """durable refuses $not: negation becomes the opposite comparison or a missing check."""
        probes = ProbeTable()
        cond = compile_ok("not (a.n >= 5)", probes)
        assert cond == {"$or": [{"_p.p0": False}, {"$lt": {"a.n": 5}}]}
        assert compile_ok("not (a.m >= 5)") == {"$lt": {"a.m": 5}}

    def test_membership_is_a_probe_over_the_named_list(self):
        """`in list NAME` is one membership probe holding the list's values: however long the
        list, the engine sees one equality (hundreds of `$or` branches crash or hang it)."""
        probes = ProbeTable()
        assert compile_ok("a.e in list letters", probes) == {"_p.p0": True}
        assert compile_ok("a.e not in list letters", probes) == {"_p.p0": False}
        [(_, probe)] = probes.items()
        assert (probe.kind, probe.path, probe.words, probe.quant) == (
            "member",
            "a.e",
            ("x", "y"),
            "",
        )
        assert probe.compute(lambda p: "y") is True
        assert probe.compute(lambda p: "z") is False
        assert probe.compute(lambda p: MISSING) is None  # absent: no test on it matches

    def test_any_member_is_a_probe(self):
        """`any x in [...]` is a membership probe over the list's elements (never an `$or`
        inside `$iany`, which durable refuses at random, and never one `$iany` per value)."""
        probes = ProbeTable()
        any_in = compile_ok("any a.l in list letters", probes)
        any_not_in = compile_ok("any a.l not in list letters", probes)
        member = {p.quant: k for k, p in probes.items() if p.kind == "member"}
        assert any_in == {f"{PROBES_KEY}.{member['any']}": True}
        assert any_not_in == {f"{PROBES_KEY}.{member['all']}": False}  # not all x in S

    def test_all_member_is_a_probe(self):
        """`all x in [...]` cannot distribute, so it is a membership probe over the list."""
        probes = ProbeTable()
        cond = compile_ok("all a.l in list letters", probes)
        [(key, probe)] = [(k, p) for k, p in probes.items() if p.kind == "member"]
        assert f"{PROBES_KEY}.{key}" in json.dumps(cond)
        assert not unsafe_quantifiers(cond) and "$iall" not in json.dumps(cond)
        assert (probe.kind, probe.words, probe.quant) == ("member", ("x", "y"), "all")
        get = {"a.l": ["x", "y", "x"]}.get
        assert probe.compute(lambda p: get(p, MISSING)) is True
        assert probe.compute(lambda p: {"a.l": ["x", "中国"]}.get(p, MISSING)) is False
        assert probe.compute(lambda p: {"a.l": []}.get(p, MISSING)) is True

    def test_impossible_condition_folds_to_false(self):
        """A test that cannot hold on an always-present fact folds to a never-matching pattern."""
        assert compile_ok("a.m is missing") == {ALWAYS_KEY: False}


# -- differential test: compiled conditions on the real engine == reference semantics ---------


def _random_leaf(rng: random.Random) -> str:
    choice = rng.randrange(14)
    op = rng.choice(["==", "!=", "<", "<=", ">", ">="])
    if choice == 0:
        return f"a.n {op} {rng.randrange(4)}"
    if choice == 1:
        return f"a.m {op} a.n"
    if choice == 2:
        return rng.choice(["a.b", "a.b == false", "a.b != true"])
    if choice == 3:
        return f'a.e {rng.choice(["==", "!="])} "{rng.choice("xyz")}"'
    if choice == 4:
        return f'a.d {op} "{rng.choice(["2024-01-01", "2024-06-01"])}"'
    if choice == 5:
        return f"a.d {op} a.d2"
    if choice == 6:
        return f"a.s {rng.choice(['contains', 'starts with', 'ends with'])} any of list words"
    if choice == 7:
        return f"a.{rng.choice('nsbd')} is {rng.choice(['missing', 'present', 'not missing'])}"
    if choice == 8:
        return f"a.l is {rng.choice(['empty', 'not empty'])}"
    if choice == 9:
        neg = rng.choice(["", "not "])
        return f'a.e {neg}in ["x", "{rng.choice("yz")}"]'
    if choice == 10:
        quant = rng.choice(["any", "all", "no"])
        test = rng.choice(
            [
                "in list letters",
                "not in list letters",
                '== "x"',
                '!= "y"',
                'contains "店"',
                "is hanzi",
                "is not hanzi",
                'ends with "x"',
            ]
        )
        return f"{quant} a.l {test}"
    if choice == 11:
        return 'a.l contains any of ["x", "中国"]'
    if choice == 12:
        return f"a.s is {rng.choice(['hanzi', 'not hanzi'])}"
    return f"a.n {rng.choice(['in', 'not in'])} [1, 2]"


def _random_expr(rng: random.Random, depth: int) -> str:
    if depth == 0 or rng.random() < 0.3:
        return _random_leaf(rng)
    kind = rng.randrange(3)
    if kind == 0:
        return f"not ({_random_expr(rng, depth - 1)})"
    joiner = " and " if kind == 1 else " or "
    return "(" + joiner.join(_random_expr(rng, depth - 1) for _ in range(rng.randrange(2, 4))) + ")"


def _random_facts(rng: random.Random) -> dict[str, Any]:
    values: dict[str, Any] = {
        "a.m": rng.randrange(4),
        "a.e": rng.choice("xyz"),
        "a.d2": rng.choice(["2024-01-01", "2024-06-01", "2025-01-01"]),
        "a.l": rng.sample(["x", "y", "中国", "南海店", "a店"], rng.randrange(4)),
    }
    if rng.random() < 0.7:
        values["a.n"] = rng.randrange(4)
    if rng.random() < 0.7:
        values["a.b"] = rng.random() < 0.5
    if rng.random() < 0.7:
        values["a.s"] = rng.choice(["中国店", "南海区某店", "x", "abc", "店x", "中"])
    if rng.random() < 0.7:
        values["a.d"] = rng.choice(["2024-01-01", "2024-06-01", "2023-12-31"])
    return values


def _engine_fact(values: dict[str, Any], probes: ProbeTable) -> dict[str, Any]:
    fact: dict[str, Any] = {ALWAYS_KEY: True, "a": {k[2:]: v for k, v in values.items()}}
    get = lambda p: values.get(p, MISSING)  # noqa: E731
    fact[PROBES_KEY] = {k: v for k, p in probes.items() if (v := p.compute(get)) is not None}
    return fact


def test_compiler_agrees_with_reference_semantics():
    """On 400 random conditions x 150 random cases, durable fires exactly when the reference
    semantics says the condition holds (negation, missing facts, quantifiers, probes)."""
    rng = random.Random(20261123)
    engine = Engine()
    sources = [_random_expr(rng, 3) for _ in range(400)]
    facts = [_random_facts(rng) for _ in range(150)]
    checked = 0
    for start in range(0, len(sources), 40):
        batch = sources[start : start + 40]
        probes = ProbeTable()
        trees = [parse(s) for s in batch]
        conditions = {
            f"r{i}": compile_condition(t, FIELDS, LISTS, probes) for i, t in enumerate(trees)
        }
        assert all(not c.errors for c in conditions.values()), [
            (s, c.errors) for s, c in zip(batch, conditions.values(), strict=True) if c.errors
        ]
        for source, c in zip(batch, conditions.values(), strict=True):
            assert not unsafe_quantifiers(c.condition), source
        handle = engine.register("diff", {k: c.condition for k, c in conditions.items()})
        for values in facts:
            fired = set(engine.evaluate(handle, _engine_fact(values, probes)))
            get = lambda p, v=values: v.get(p, MISSING)  # noqa: E731
            for i, tree in enumerate(trees):
                expected = evaluate(tree, get, LISTS)
                assert (f"r{i}" in fired) == expected, (batch[i], values)
                checked += 1
        engine.unregister(handle)
    assert checked == 400 * 150


def test_hanzi():
    """Only CJK unified ideographs count as 规范汉字."""
    assert is_hanzi("南海区理发店")
    assert not is_hanzi("南海区理发店A")
    assert not is_hanzi("南海 店")
    assert not is_hanzi("")
    assert not is_hanzi("南海（店）")
