"""Type-check a parsed condition against an item's form and compile it to a durable_rules
condition (the JSON `m` pattern of one rule).

Semantics (the same as `reference.evaluate`): a comparison or test on a missing fact is false;
`not`, `and`, `or` are ordinary logic. durable_rules refuses `$not` and `$nex`, so negation is
pushed down to the leaves (`<` becomes `>=`, `in` becomes all-`$neq`, De Morgan for and/or),
adding "or the fact is missing" where a fact may be missing.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from miaopi_server.lang import ast
from miaopi_server.lang.probes import Probe, ProbeTable

ALWAYS_KEY = "_always"  # every asserted fact carries {"_always": true}
MAX_LIST_VALUES = 20_000  # values in one inline [...] or named list (docs/RULES.md)

TRUE: dict[str, Any] = {ALWAYS_KEY: True}
FALSE: dict[str, Any] = {ALWAYS_KEY: False}
_DURABLE_OP = {"<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte", "!=": "$neq"}


class Compares(enum.Enum):
    """How conditions may use a fact: each field type (rules/fieldtypes.py) names one."""

    NUMBER = "number"  # == != < <= > >= with numbers and other NUMBER facts
    TEXT = "text"  # == != in, contains / starts with / ends with / hanzi; other text facts
    CHOICE = "choice"  # as TEXT, and a constant must be one of the field's enum values
    DATE = "date"  # == != < <= > >= with "YYYY-MM-DD" and other DATE facts
    BOOLEAN = "boolean"  # the fact alone (`a.b`, `not a.b`), == true / false
    TEXT_LIST = "text_list"  # empty, contains, any / all / no over its text elements

    @property
    def ordered(self) -> bool:
        return self in (Compares.NUMBER, Compares.DATE)

    @property
    def textual(self) -> bool:
        return self in (Compares.TEXT, Compares.CHOICE)

    def accepts(self, value: Any) -> bool:
        """Whether a constant in a condition can be compared with such a fact."""
        if self is Compares.NUMBER:
            return isinstance(value, int | float) and not isinstance(value, bool)
        if self.textual:
            return isinstance(value, str)
        if self is Compares.DATE:
            return isinstance(value, str) and _is_date(value)
        if self is Compares.BOOLEAN:
            return isinstance(value, bool)
        return False  # a list is never compared with one constant

    @property
    def expected(self) -> str:
        """What a constant compared with such a fact must be, for error messages."""
        return {
            Compares.DATE: '日期 "YYYY-MM-DD"',
            Compares.BOOLEAN: "true / false",
            Compares.NUMBER: "数字",
        }.get(self, "文字")


ELEMENT = ("string", Compares.TEXT)  # an element of a list (`x` in `any x ...`)


@dataclass(frozen=True)
class FieldSpec:
    """What the compiler needs to know about one fact path. `kind` is the field type's name
    (for messages); `compares` is None for a field whose type failed to load (already
    reported): constants compared with it add no further errors."""

    path: str
    kind: str
    always_present: bool
    enum_values: tuple[str, ...] = ()
    compares: Compares | None = field(kw_only=True)


@dataclass
class CompileError:
    code: str
    message: str
    pos: int


@dataclass
class Compiled:
    condition: dict[str, Any]
    paths: list[str]
    errors: list[CompileError] = field(default_factory=list)

    @property
    def never(self) -> bool:
        return self.condition == FALSE


def _and(items: list[dict[str, Any]]) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    for c in items:
        if c == FALSE:
            return FALSE
        if c == TRUE:
            continue
        out.extend(c.get("$and", [c]))
    if not out:
        return TRUE
    return out[0] if len(out) == 1 else {"$and": out}


def _or(items: list[dict[str, Any]]) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    for c in items:
        if c == TRUE:
            return TRUE
        if c == FALSE:
            continue
        out.extend(c.get("$or", [c]))
    if not out:
        return FALSE
    return out[0] if len(out) == 1 else {"$or": out}


def _cmp(path: str, op: str, value: Any) -> dict[str, Any]:
    """One durable comparison; `path` may be "$i" (the list element)."""
    if op == "==":
        return {path: value}
    return {_DURABLE_OP[op]: {path: value}}


_TYPE_WORD = {
    Compares.DATE: "日期",
    Compares.NUMBER: "数字",
    Compares.TEXT: "文字",
    Compares.CHOICE: "文字",
    Compares.BOOLEAN: "是/否",
    Compares.TEXT_LIST: "列表",
}


def _has_arith(side: ast.Side) -> bool:
    return isinstance(side, ast.Shift | ast.DaysBetween)


def _const_type(value: Any) -> Compares:
    if isinstance(value, bool):
        return Compares.BOOLEAN
    if isinstance(value, int | float):
        return Compares.NUMBER
    return Compares.DATE if _is_date(value) else Compares.TEXT


def _is_date(text: str) -> bool:
    try:
        return len(text) == 10 and dt.date.fromisoformat(text).isoformat() == text
    except ValueError:
        return False


class _Compiler:
    def __init__(
        self,
        fields: Mapping[str, FieldSpec],
        lists: Mapping[str, tuple[str, ...]],
        probes: ProbeTable,
    ):
        self.fields = fields
        self.lists = lists
        self.probes = probes
        self.errors: list[CompileError] = []

    def fail(self, code: str, message: str, pos: int) -> dict[str, Any]:
        self.errors.append(CompileError(code, message, pos))
        return FALSE

    # -- lookups
    def spec(self, path: ast.Path) -> FieldSpec | None:
        spec = self.fields.get(path.name)
        if spec is None:
            self.fail("MP301", f"字段 {path.name} 不在表单或派生字段中", path.pos)
        return spec

    def element_kind(
        self, subject: ast.Path | ast.Element
    ) -> tuple[str, Compares | None, FieldSpec | None]:
        """The subject's type name, how it compares (None: unknown, already reported), spec."""
        if isinstance(subject, ast.Element):
            return (*ELEMENT, None)
        spec = self.spec(subject)
        if spec is None:
            return "?", None, None
        return spec.kind, spec.compares, spec

    def values(self, values: ast.ValueSet) -> tuple[ast.Const, ...]:
        if isinstance(values, ast.ListLiteral):
            if len(values.items) > MAX_LIST_VALUES:
                count = len(values.items)
                self.fail("MP343", f"列表有 {count} 个值，超过上限 {MAX_LIST_VALUES}", values.pos)
                return ()
            return values.items
        named = self.lists.get(values.name)
        if named is None:
            self.fail("MP302", f"未定义的清单 {values.name}", values.pos)
            return ()
        return tuple(ast.Const(v, values.pos) for v in named)

    def probe(self, probe: Probe) -> str:
        return f"_p.{self.probes.key(probe)}"

    def missing(self, spec: FieldSpec | None) -> dict[str, Any]:
        """Condition 'this fact is missing' (FALSE for facts that are always present)."""
        if spec is None or spec.always_present:
            return FALSE
        return {self.probe(Probe("present", spec.path)): False}

    def present(self, spec: FieldSpec | None) -> dict[str, Any]:
        if spec is None or spec.always_present:
            return TRUE
        return {self.probe(Probe("present", spec.path)): True}

    # -- type checks
    def check_const(
        self,
        kind: str,
        compares: Compares | None,
        spec: FieldSpec | None,
        const: ast.Const,
        what: str,
    ) -> bool:
        v = const.value
        if compares is None:
            return False
        if not compares.accepts(v):
            expected = compares.expected
            self.fail("MP303", f"{what} 是 {kind} 类型，只能与{expected}比较", const.pos)
            return False
        if compares is Compares.CHOICE and spec is not None and v not in spec.enum_values:
            allowed = "、".join(spec.enum_values)
            self.fail("MP304", f"{v!r} 不是 {spec.path} 的可选值（{allowed}）", const.pos)
            return False
        return True

    # -- compile
    def compile(self, node: ast.Expr, neg: bool) -> dict[str, Any]:
        if isinstance(node, ast.Not):
            return self.compile(node.operand, not neg)
        if isinstance(node, ast.And | ast.Or):
            parts = [self.compile(o, neg) for o in node.operands]
            return _and(parts) if isinstance(node, ast.And) != neg else _or(parts)
        if isinstance(node, ast.Truthy):
            spec = self.spec(node.subject)
            if spec is not None and spec.compares is not Compares.BOOLEAN:
                return self.fail("MP305", f"{spec.path} 不是是/否字段，请写出比较", node.pos)
            if not neg:
                return {node.subject.name: True}
            return _or([self.missing(spec), {node.subject.name: False}])
        if isinstance(node, ast.Presence):
            spec = self.spec(node.subject)
            want_missing = node.missing != neg
            return self.missing(spec) if want_missing else self.present(spec)
        if isinstance(node, ast.Emptiness):
            spec = self.spec(node.subject)
            if spec is None:
                return FALSE
            if spec.compares is not Compares.TEXT_LIST:
                return self.fail("MP306", f"{spec.path} 不是列表，不能检验 empty", node.pos)
            key = self.probe(Probe("empty", spec.path))
            return _or([self.missing(spec), {key: not node.empty}]) if neg else {key: node.empty}
        if isinstance(node, ast.Quantified):
            return self.quantified(node, neg)
        return self.leaf(node, neg)

    def leaf(self, node: ast.Expr, neg: bool) -> dict[str, Any]:
        """A test on a single fact (not inside any / all / no)."""
        if isinstance(node, ast.Compare):
            return self.compare(node, neg, element=False)
        if isinstance(node, ast.Member):
            return self.member(node, neg)
        if isinstance(node, ast.StringTest | ast.Hanzi):
            subject = node.subject
            assert isinstance(subject, ast.Path)
            _, compares, spec = self.element_kind(subject)
            if compares is Compares.TEXT_LIST and isinstance(node, ast.StringTest):
                if node.mode != "contains":
                    return self.fail(
                        "MP307", "列表请写 any 字段 starts with / ends with ...", node.pos
                    )
                as_any = ast.Quantified(
                    "any",
                    subject,
                    ast.Member(ast.Element(node.pos), node.words, False, node.pos),
                    node.pos,
                )
                return self.quantified(as_any, neg)
            if compares is None or not compares.textual:
                if compares is not None:
                    self.fail("MP303", f"{subject.name} 不是文字字段，不能做文字检验", node.pos)
                return FALSE
            key = self.probe(self.string_probe(node, subject.name, ""))
            return _or([self.missing(spec), {key: False}]) if neg else {key: True}
        raise AssertionError(f"unexpected node {node!r}")

    def string_probe(self, node: ast.StringTest | ast.Hanzi, path: str, quant: str) -> Probe:
        if isinstance(node, ast.Hanzi):
            return Probe("hanzi", path, quant=quant)  # type: ignore[arg-type]
        words: list[str] = []
        for c in self.values(node.words):
            if not isinstance(c.value, str) or not c.value:
                self.fail("MP303", "文字检验只能使用非空文字", c.pos)
            else:
                words.append(c.value)
        return Probe("string", path, node.mode, tuple(words), quant)  # type: ignore[arg-type]

    def compare(self, node: ast.Compare, neg: bool, element: bool) -> dict[str, Any]:
        if _has_arith(node.left) or _has_arith(node.right):
            return self.arith(node, neg, element)
        left, op, right = node.left, node.op, node.right
        assert not isinstance(left, ast.Shift | ast.DaysBetween)
        assert not isinstance(right, ast.Shift | ast.DaysBetween)
        if isinstance(left, ast.Const):
            if isinstance(right, ast.Const):
                return self.fail("MP308", "比较的两边都是常量", node.pos)
            left, op, right = right, ast.FLIPPED_OP[op], left
        if neg:
            op = ast.NEGATED_OP[op]
        kind, compares, spec = self.element_kind(left)
        where = "$i" if element else left.name  # type: ignore[union-attr]
        label = "列表元素" if element else where
        if op in ("<", "<=", ">", ">=") and compares is not None and not compares.ordered:
            return self.fail("MP309", f"{label} 是 {kind} 类型，不能比较大小", node.pos)
        if isinstance(right, ast.Const):
            if not self.check_const(kind, compares, spec, right, label):
                return FALSE
            cond = _cmp(where, op, right.value)
            return _or([self.missing(spec), cond]) if neg else cond
        if isinstance(right, ast.Element) or element:
            return self.fail("MP310", "列表元素只能与常量比较", right.pos)
        other = self.spec(right)
        if spec is None or other is None:
            return FALSE
        a, b = spec.compares, other.compares
        same = a is b or (a is not None and b is not None and a.textual and b.textual)
        if not same or a is Compares.TEXT_LIST:
            return self.fail("MP303", f"{spec.path} 与 {other.path} 类型不同，不能比较", node.pos)
        cond = _cmp(spec.path, op, {"$m": other.path})
        if neg:
            return _or([self.missing(spec), self.missing(other), cond])
        return _and([self.present(spec), self.present(other), cond])

    def arith(self, node: ast.Compare, neg: bool, element: bool) -> dict[str, Any]:
        """A comparison with date arithmetic: computed whole in Python as one probe (the
        engine compares strings and numbers only), negation and missing facts included."""
        if element:
            return self.fail("MP310", "列表元素只能与常量比较", node.pos)
        left, right = self.term(node.left), self.term(node.right)
        if left is None or right is None:
            return FALSE
        (a, left_term), (b, right_term) = left, right
        paths = ast.paths_of(node)
        if not paths:
            return self.fail("MP308", "比较的两边都是常量", node.pos)
        if a is not b:
            message = f"{_TYPE_WORD.get(a, a.value)}与{_TYPE_WORD.get(b, b.value)}不能比较"
            return self.fail("MP303", message, node.pos)
        probe = Probe("calc", paths[0], words=(left_term, node.op, right_term, neg))
        return {self.probe(probe): True}

    def term(self, side: ast.Side) -> tuple[Compares, tuple[Any, ...]] | None:
        """A side's type and its position-free form for the probe; None: an error, reported."""
        if isinstance(side, ast.Element):
            self.fail("MP310", "列表元素不能参与日期计算", side.pos)
            return None
        if isinstance(side, ast.Path):
            spec = self.spec(side)
            if spec is None or spec.compares is None:
                return None
            return spec.compares, ("path", side.name)
        if isinstance(side, ast.Const):
            return _const_type(side.value), ("const", side.value)
        if isinstance(side, ast.Shift):
            base = self.date_term(side.base, "只有日期可以加减期间")
            if base is None:
                return None
            return Compares.DATE, ("shift", base, side.amount, side.unit)
        first = self.date_term(side.first, "days between 的两边须为日期")
        second = self.date_term(side.second, "days between 的两边须为日期")
        if first is None or second is None:
            return None
        return Compares.NUMBER, ("days", first, second)

    def date_term(self, side: ast.DateTerm, message: str) -> tuple[Any, ...] | None:
        found = self.term(side)
        if found is None:
            return None
        kind, term = found
        if kind is not Compares.DATE:
            shown = side.name if isinstance(side, ast.Path) else _TYPE_WORD.get(kind, kind.value)
            self.fail("MP313", f"{message}（{shown} 不是日期）", side.pos)
            return None
        return term

    def member(self, node: ast.Member, neg: bool) -> dict[str, Any]:
        """`x in S` / `x not in S` on one fact: a membership probe, so the size of S never
        reaches the engine (a few hundred `$or` branches crash or hang it; docs/ENGINE.md)."""
        kind, compares, spec = self.element_kind(node.subject)
        where = node.subject.name  # type: ignore[union-attr]
        if compares is Compares.TEXT_LIST:
            return self.fail("MP311", "列表字段请写 any / all / no 字段 in ...", node.pos)
        values = self.member_values(node, kind, compares, spec, where)
        if values is None:
            return FALSE
        key = self.probe(Probe("member", where, words=values))
        inside = node.negated == neg  # True: "value is one of them"
        return _or([self.missing(spec), {key: inside}]) if neg else {key: inside}

    def member_values(
        self,
        node: ast.Member,
        kind: str,
        compares: Compares | None,
        spec: FieldSpec | None,
        where: str,
    ) -> tuple[ast.Scalar, ...] | None:
        """The set's values, each type-checked against the subject (None: an error)."""
        consts = self.values(node.values)
        values = [c.value for c in consts if self.check_const(kind, compares, spec, c, where)]
        if len(values) != len(consts):
            return None
        return tuple(dict.fromkeys(values))

    def quantified(self, node: ast.Quantified, neg: bool) -> dict[str, Any]:
        spec = self.spec(node.subject)
        if spec is None:
            return FALSE
        if spec.compares is not Compares.TEXT_LIST:
            return self.fail("MP312", f"{spec.path} 不是列表，不能用 any / all / no", node.pos)
        kind = "any" if node.kind == "any" else "all"  # no x t == all x (not t)
        test_neg = node.kind == "no"
        if neg:  # not any t == all (not t); not all t == any (not t)
            kind = "all" if kind == "any" else "any"
            test_neg = not test_neg
        test: ast.Expr = node.test
        while isinstance(test, ast.Not):
            test, test_neg = test.operand, not test_neg
        path = spec.path
        empty = self.probe(Probe("empty", path))
        result: dict[str, Any]
        if isinstance(test, ast.StringTest | ast.Hanzi):
            if not test_neg:
                result = {self.probe(self.string_probe(test, path, kind)): True}
            else:  # any (not t) == not all t; all (not t) == not any t
                dual = "all" if kind == "any" else "any"
                result = {self.probe(self.string_probe(test, path, dual)): False}
        else:
            if isinstance(test, ast.Member):
                # any / all x in S: a membership probe over the elements (S never reaches the
                # engine). any x not in S == not all x in S; all x not in S == not any x in S.
                values = self.member_values(test, *ELEMENT, None, "列表元素")
                if values is None:
                    return FALSE
                if test.negated != test_neg:
                    dual = "all" if kind == "any" else "any"
                    probe = Probe("member", path, words=values, quant=dual)  # type: ignore[arg-type]
                    result = {self.probe(probe): False}
                else:
                    probe = Probe("member", path, words=values, quant=kind)  # type: ignore[arg-type]
                    result = {self.probe(probe): True}
                return (
                    _or([self.missing(spec), result]) if neg else _and([self.present(spec), result])
                )
            if not isinstance(test, ast.Compare):
                return self.fail("MP206", "列表元素不支持这种检验", test.pos)
            cond = self.compare(test, test_neg, element=True)
            if cond == TRUE:
                result = TRUE if kind == "all" else {empty: False}
            elif cond == FALSE:
                result = {empty: True} if kind == "all" else FALSE
            elif kind == "any":
                result = {"$iany": {path: cond}}
            else:
                # durable's $iall is false on an empty list; "all of nothing" is true.
                result = _or([{empty: True}, {"$iall": {path: cond}}])
        return _or([self.missing(spec), result]) if neg else _and([self.present(spec), result])


def compile_condition(
    node: ast.Expr,
    fields: Mapping[str, FieldSpec],
    lists: Mapping[str, tuple[str, ...]],
    probes: ProbeTable,
) -> Compiled:
    """Compile one parsed condition; type errors are collected in `errors`."""
    c = _Compiler(fields, lists, probes)
    condition = c.compile(node, neg=False)
    return Compiled(condition, ast.paths_of(node), c.errors)


@dataclass
class CompiledValue:
    """A computed value, type-checked: `compares` is DATE or NUMBER, None after an error."""

    compares: Compares | None
    paths: list[str]
    errors: list[CompileError] = field(default_factory=list)


def compile_value(side: ast.Side, fields: Mapping[str, FieldSpec]) -> CompiledValue:
    """Type-check a computed value (`compute:` of an output or a derived fact): a date, a date
    moved by periods, or `days between` two dates (a number of days); date arithmetic follows
    the same rules as in conditions (MP313)."""
    c = _Compiler(fields, {}, ProbeTable())
    found = c.term(side)
    paths = _side_paths(side)
    if found is None:
        return CompiledValue(None, paths, c.errors)
    kind, _ = found
    if kind not in (Compares.DATE, Compares.NUMBER):
        word = _TYPE_WORD.get(kind, kind.value)
        c.fail(
            "MP361", f"计算式的结果是{word}，只能是日期或数字（如 application.date + 1 year）", 0
        )
        return CompiledValue(None, paths, c.errors)
    return CompiledValue(kind, paths, c.errors)


def _side_paths(side: ast.Side) -> list[str]:
    if isinstance(side, ast.Path):
        return [side.name]
    if isinstance(side, ast.Shift):
        return _side_paths(side.base)
    if isinstance(side, ast.DaysBetween):
        return list(dict.fromkeys(_side_paths(side.first) + _side_paths(side.second)))
    return []
