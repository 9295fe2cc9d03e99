"""Lint a rules directory: every error the server would refuse to load, plus warnings about
rules that can never matter. Nothing is executed and nothing is registered in the engine.

    lint_directory(root) -> sorted diagnostics (errors and warnings), each file:line:column

Checks, in order:
  1. `directory.compile_directory`: the loader (MP1xx), condition parser (MP2xx) and compiler
     (MP3xx) diagnostics, exactly as the server reports them. Should the loader crash, files
     are loaded one by one and the one it crashes on is reported as MP199.
  2. JSON Schema (`rules/rulefile.schema.json`) on every YAML file, located on the YAML node
     (MP150). A problem the loader already reported at the same node is not repeated.
  3. Warnings (MP4xx), only for files that have no error, so one mistake does not cascade:
     MP401 a rule (or a material's `when`) that can never match
     MP402 an item that can never be approved
     MP403 an optional field, or a derived fact, that nothing reads
     MP404 a legal basis nothing cites (the first entry, the item's 设定依据, is exempt)
     MP405 an item-local named list nothing uses
     MP406 an output case that can never be chosen

"Can never match" is decided on the condition itself, not by running cases: negation is pushed
down to leaf tests (with the language's rule that a test on a missing fact is false), the
condition is put in disjunctive normal form, and each conjunct is checked for a contradiction
(an empty numeric or date interval, two different required values, `x is missing` with a test
on x, a fact that is always present tested as missing, a test and its negation, ...). A
condition never matches when every conjunct is contradictory. The check is sound but not
complete: it only claims "never" when it is sure, and gives up (claims nothing) beyond
`DNF_LIMIT` conjuncts.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from miaopi_server.errors import Diagnostic
from miaopi_server.lang import ast
from miaopi_server.lang.compiler import FieldSpec
from miaopi_server.rules.compile import (
    CompiledItem,
    compile_item,
    field_specs,
    material_key,
    rule_key,
)
from miaopi_server.rules.directory import compile_directory, version_overlaps
from miaopi_server.rules.loader import (
    LISTS_DIR,
    conditions_of,
    display_path,
    item_files,
    load_rule_file,
    load_shared_lists,
)
from miaopi_server.rules.model import APPLICATION_DATE, Condition, Item
from miaopi_server.rules.schema import rulefile_schema

DNF_LIMIT = 256  # conjuncts; beyond this the contradiction check gives up (claims nothing)
WARNING = "warning"
_NEVER_MISSING = "总有值（必填、有缺省值或由必填字段派生），不会缺失"


@dataclass(frozen=True)
class LintReport:
    """Every diagnostic (sorted) and the files that were looked at (display paths)."""

    diagnostics: list[Diagnostic]
    files: list[str] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(d.severity != WARNING for d in self.diagnostics)

    @property
    def warnings(self) -> int:
        return sum(d.severity == WARNING for d in self.diagnostics)


def lint_directory(root: Path) -> list[Diagnostic]:
    """Errors and warnings for every rule file under `root`, sorted by file:line:column."""
    return lint(root).diagnostics


def lint(root: Path) -> LintReport:
    try:
        compiled, diagnostics = compile_directory(root)
    except Exception:  # a loader defect must not hide every other file's problems
        compiled, diagnostics = _compile_each(root)
    lists_dir = root / LISTS_DIR
    list_files = sorted(lists_dir.rglob("*.y*ml")) if lists_dir.is_dir() else []
    paths = [(p, False) for p in item_files(root)] + [(p, True) for p in list_files]
    schema = _schema()
    trees: dict[str, yaml.Node] = {}
    for path, is_list in paths:
        display = display_path(root, path)
        tree = _compose(path)
        if tree is None:
            continue  # unreadable or not YAML: the loader said so (MP100)
        trees[display] = tree
        already = {(d.line, d.column) for d in diagnostics if d.file == display}
        diagnostics.extend(schema.check(display, tree, is_list, already))
    failed = {d.file for d in diagnostics if d.severity != WARNING}
    for c in compiled:
        if c.item.source not in failed and c.item.source in trees:
            diagnostics.extend(_Warnings(c, trees[c.item.source]).run())
    files = sorted(display_path(root, p) for p, _ in paths)
    return LintReport(sorted(set(diagnostics)), files)


def _compile_each(root: Path) -> tuple[list[CompiledItem], list[Diagnostic]]:
    """`compile_directory`, one file at a time: a file the loader crashes on becomes MP199."""
    lists, diagnostics = load_shared_lists(root)
    compiled: list[CompiledItem] = []
    files = item_files(root)
    if not files:
        diagnostics.append(Diagnostic(str(root), 1, 1, "MP109", "目录中没有规则文件"))
    for path in files:
        try:
            item, diags = load_rule_file(path, root, lists)
            diagnostics.extend(diags)
            if item is None:
                continue
            c, diags = compile_item(item)
        except Exception as exc:
            message = (
                f"加载器内部错误 {type(exc).__name__}: {exc}（服务端加载此文件同样会出错，"
                "请报告此缺陷；先修正本文件的其他问题通常可以绕过）"
            )
            diagnostics.append(Diagnostic(display_path(root, path), 1, 1, "MP199", message))
            continue
        diagnostics.extend(diags)
        compiled.append(c)
    diagnostics.extend(version_overlaps(compiled))
    return compiled, diagnostics


def never_holds(item: Item, condition: ast.Expr) -> bool | None:
    """True when `condition` can never hold for a valid case of `item`; False when it may (or
    the check cannot tell a contradiction); None when its normal form is too large to check."""
    logic = _Logic(item)
    return logic.never(logic.formula(condition))


def _compose(path: Path) -> yaml.Node | None:
    try:
        return yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None


# -- YAML nodes -----------------------------------------------------------------------------


def _pairs(node: yaml.Node | None) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    """A mapping node's entries by key text; the first of duplicate keys wins (as in the loader)."""
    out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value not in out:
                out[k.value] = (k, v)
    return out


def _at(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _to_instance(root: yaml.Node) -> Any:
    """The JSON instance the schema sees: keys as written, scalars as YAML types them, dates
    and timestamps as ISO text (JSON has no date type)."""
    loader = yaml.SafeLoader("")
    active: set[int] = set()

    def scalar(node: yaml.ScalarNode) -> Any:
        try:
            value = loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError):
            return node.value  # an unknown tag or an impossible date: the loader reads the text
        if isinstance(value, dt.date):  # datetime is a date too
            return value.isoformat()
        if isinstance(value, bytes):
            return node.value
        return value

    def walk(node: yaml.Node) -> Any:
        if id(node) in active:  # a recursive alias
            return None
        active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return {k: walk(v) for k, (_, v) in _pairs(node).items()}
            if isinstance(node, yaml.SequenceNode):
                return [walk(v) for v in node.value]
            return scalar(node)  # type: ignore[arg-type]
        finally:
            active.discard(id(node))

    try:
        return walk(root)
    finally:
        loader.dispose()


def _follow(root: yaml.Node, path: Iterable[Any]) -> tuple[yaml.Node | None, yaml.Node]:
    """(key node, value node) at a JSON path; stops at the deepest node that exists."""
    key: yaml.Node | None = None
    node = root
    for step in path:
        if isinstance(node, yaml.MappingNode) and isinstance(step, str):
            entry = _pairs(node).get(step)
            if entry is None:
                break
            key, node = entry
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            if step >= len(node.value):
                break
            key, node = None, node.value[step]
        else:
            break
    return key, node


# -- JSON Schema (MP150) --------------------------------------------------------------------

_TYPE_NAMES = {
    "string": "文字",
    "integer": "整数",
    "number": "数字",
    "boolean": "true 或 false",
    "object": "键值映射",
    "array": "列表",
    "null": "空值",
}


def _zh(text: str) -> str:
    """The Chinese half of a bilingual "中文 / English" schema message."""
    return text.split(" / ")[0].strip()


def _where(path: list[Any]) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out or "规则文件"


def _yaml_kind(value: Any) -> str:
    if value is None:
        return "空值"
    if isinstance(value, bool):
        return "布尔值"
    if isinstance(value, int | float):
        return "数字"
    return _TYPE_NAMES.get(type(value).__name__, "其他类型")


@cache
def _schema() -> _Schema:
    return _Schema(rulefile_schema())


class _Schema:
    def __init__(self, schema: dict[str, Any]):
        from jsonschema import Draft202012Validator, FormatChecker
        from referencing import Registry, Resource

        base = schema["$id"]
        registry = Registry().with_resource(base, Resource.from_contents(schema))
        checker = FormatChecker(["date"])

        def validator(ref: str) -> Any:
            return Draft202012Validator(
                {"$ref": f"{base}#/$defs/{ref}"}, registry=registry, format_checker=checker
            )

        self.item = validator("itemFile")
        self.lists = validator("listFile")

    def check(
        self, display: str, root: yaml.Node, is_list: bool, already: set[tuple[int, int]]
    ) -> list[Diagnostic]:
        """MP150 for each schema violation, unless the loader reported a problem at the same
        node (its value or its key), which then already explains it."""
        out: dict[tuple[int, int, str], Diagnostic] = {}
        validator = self.lists if is_list else self.item
        for error in validator.iter_errors(_to_instance(root)):
            for node, others, message in self._explain(root, error):
                places = {_at(node)} | {_at(n) for n in others}
                if places & already:
                    continue
                line, column = _at(node)
                out.setdefault(
                    (line, column, message),
                    Diagnostic(display, line, column, "MP150", message),
                )
        return list(out.values())

    def _explain(
        self, root: yaml.Node, error: Any
    ) -> Iterator[tuple[yaml.Node, list[yaml.Node], str]]:
        """(node to report at, other nodes meaning the same place, message) per problem."""
        path = list(error.absolute_path)
        key, node = _follow(root, path)
        where = _where(path)
        near = [key] if key is not None else []
        schema = error.schema if isinstance(error.schema, dict) else {}
        schema_path = list(error.schema_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = schema.get("properties", {})
            keys = _pairs(node)
            for name in error.instance:
                if name not in known and name in keys:
                    allowed = "、".join(sorted(known))
                    yield keys[name][0], [], f"{where} 中未知的键 {name!r}（可用：{allowed}）"
        elif error.validator == "required" and isinstance(error.instance, dict):
            for name in error.validator_value:
                if name not in error.instance:
                    yield node, [], f"{where} 缺少必填项 {name!r}"
        elif len(schema_path) >= 2 and schema_path[-2] == "propertyNames":
            keys = _pairs(node)
            name = str(error.instance)
            at = keys[name][0] if name in keys else node
            hint = _zh(schema.get("patternErrorMessage", "格式不对"))
            yield at, [], f"{where} 中的键 {name!r}：{hint}"
        else:
            yield node, near, f"{where} {self._problem(error, node)}"

    @staticmethod
    def _problem(error: Any, node: yaml.Node) -> str:
        schema = error.schema if isinstance(error.schema, dict) else {}
        v = error.validator
        if v == "type":
            expected = error.validator_value
            names = [expected] if isinstance(expected, str) else list(expected)
            want = "或".join(_TYPE_NAMES.get(n, n) for n in names)
            if "string" in names and isinstance(node, yaml.ScalarNode) and not node.style:
                got = _yaml_kind(error.instance)
                if error.instance is None:
                    return f"应为{want}，此处为空"
                return (
                    f"应为{want}，但 YAML 把 {node.value} 读作{got} {error.instance!r}，"
                    f'请加引号写成 "{node.value}"'
                )
            return f"应为{want}"
        if v == "enum":
            return f"应为 {'、'.join(map(str, error.validator_value))} 之一"
        if v == "const":
            return f"应为 {error.validator_value}"
        if v == "pattern":
            return _zh(schema.get("patternErrorMessage", f"不符合格式 {error.validator_value}"))
        if v == "format":
            return "应为有效日期 YYYY-MM-DD"
        if v == "minimum":
            return f"不能小于 {error.validator_value}"
        if v == "not" and "errorMessage" in schema:
            return _zh(schema["errorMessage"])
        return f"不符合规则文件格式（{error.message}）"


# -- conditions as formulas -----------------------------------------------------------------
# A formula is a literal or ("and" | "or", (formulas...)) or ("not", formula).


@dataclass(frozen=True)
class _Present:
    path: str
    present: bool


@dataclass(frozen=True)
class _Cmp:
    """A comparison with a constant; false when the fact is missing."""

    path: str
    op: str
    value: Any


@dataclass(frozen=True)
class _In:
    """`x in S` / `x not in S`; both false when the fact is missing."""

    path: str
    values: frozenset[Any]
    negated: bool


_ORDER = frozenset({"lt", "eq", "gt"})
_OP_ORDER = {
    "<": frozenset({"lt"}),
    "<=": frozenset({"lt", "eq"}),
    "==": frozenset({"eq"}),
    "!=": frozenset({"lt", "gt"}),
    ">": frozenset({"gt"}),
    ">=": frozenset({"gt", "eq"}),
}


@dataclass(frozen=True)
class _Rel:
    """A comparison of two facts (a < b by name); `order` is the set of allowed orderings."""

    a: str
    b: str
    order: frozenset[str]


@dataclass(frozen=True)
class _Atom:
    """A test this check does not look inside (string tests, quantifiers, emptiness): only a
    test and its own negation contradict. When `holds`, the fact `path` is present."""

    key: tuple[Any, ...]
    holds: bool
    path: str | None


_Literal = _Present | _Cmp | _In | _Rel | _Atom
TRUE: tuple[Any, ...] = ("and", ())
FALSE: tuple[Any, ...] = ("or", ())


def _negate(lit: _Literal) -> Any:
    """The negation of a literal, with the missing-fact rule made explicit."""
    if isinstance(lit, _Present):
        return _Present(lit.path, not lit.present)
    if isinstance(lit, _Atom):
        return _Atom(lit.key, not lit.holds, lit.path)
    if isinstance(lit, _Cmp):
        return (
            "or",
            (_Present(lit.path, False), _Cmp(lit.path, ast.NEGATED_OP[lit.op], lit.value)),
        )
    if isinstance(lit, _In):
        return ("or", (_Present(lit.path, False), _In(lit.path, lit.values, not lit.negated)))
    return (
        "or",
        (_Present(lit.a, False), _Present(lit.b, False), _Rel(lit.a, lit.b, _ORDER - lit.order)),
    )


class _TooBig(Exception):
    pass


class _Logic:
    """Contradiction checks for one item's conditions, knowing its form."""

    def __init__(self, item: Item):
        self.item = item
        self.specs: dict[str, FieldSpec] = field_specs(item)
        self.reasons: set[str] = set()

    # -- AST -> formula
    def formula(self, node: ast.Expr) -> Any:
        if isinstance(node, ast.Not):
            return ("not", self.formula(node.operand))
        if isinstance(node, ast.And | ast.Or):
            kind = "and" if isinstance(node, ast.And) else "or"
            return (kind, tuple(self.formula(o) for o in node.operands))
        if isinstance(node, ast.Truthy):
            return _Cmp(node.subject.name, "==", True)
        if isinstance(node, ast.Presence):
            return _Present(node.subject.name, not node.missing)
        if isinstance(node, ast.Emptiness):
            x = node.subject.name
            if node.empty:
                return _Atom(("empty", x), True, x)
            return ("and", (_Present(x, True), _Atom(("empty", x), False, x)))
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.Member) and isinstance(node.subject, ast.Path):
            values = self.values(node.values)
            if values is None:
                return self.unknown(node)
            return _In(node.subject.name, values, node.negated)
        if isinstance(node, ast.StringTest | ast.Hanzi) and isinstance(node.subject, ast.Path):
            x = node.subject.name
            spec = self.specs.get(x)
            if isinstance(node, ast.StringTest) and spec and spec.kind == "string_list":
                words = self.values(node.words)  # `list contains w` is `any list in [w]`
                return (
                    self.unknown(node)
                    if words is None
                    else _Atom(("any", x, ("in", words)), True, x)
                )
            key = self.element_key(node)
            return self.unknown(node) if key is None else _Atom((*key[0], x), True, x)
        if isinstance(node, ast.Quantified):
            return self.quantified(node)
        return self.unknown(node)

    @staticmethod
    def unknown(node: Any) -> _Atom:
        return _Atom(("unknown", id(node)), True, None)

    def values(self, vs: ast.ValueSet) -> frozenset[Any] | None:
        if isinstance(vs, ast.ListLiteral):
            return frozenset(c.value for c in vs.items)
        named = self.item.lists.get(vs.name)
        return None if named is None else frozenset(named)

    def compare(self, node: ast.Compare) -> Any:
        left, op, right = node.left, node.op, node.right
        if isinstance(left, ast.Const):
            left, op, right = right, ast.FLIPPED_OP[op], left
        if not isinstance(left, ast.Path):
            return self.unknown(node)
        if isinstance(right, ast.Const):
            return _Cmp(left.name, op, right.value)
        if not isinstance(right, ast.Path):
            return self.unknown(node)
        a, b = left.name, right.name
        if a == b:
            return _Present(a, True) if "eq" in _OP_ORDER[op] else FALSE
        if b < a:
            a, b, op = b, a, ast.FLIPPED_OP[op]
        return _Rel(a, b, _OP_ORDER[op])

    def element_key(self, test: Any) -> tuple[tuple[Any, ...], bool] | None:
        """A canonical key of a test on one element, and whether it is negated."""
        neg = False
        while isinstance(test, ast.Not):
            test, neg = test.operand, not neg
        if isinstance(test, ast.Compare):
            left, op, right = test.left, test.op, test.right
            if isinstance(left, ast.Const):
                left, op, right = right, ast.FLIPPED_OP[op], left
            if not isinstance(right, ast.Const):
                return None
            if op in ("!=", ">=", "<="):
                op, neg = ast.NEGATED_OP[op], not neg
            return ("cmp", op, right.value), neg
        if isinstance(test, ast.Member):
            values = self.values(test.values)
            return None if values is None else (("in", values), neg != test.negated)
        if isinstance(test, ast.StringTest):
            words = self.values(test.words)
            return None if words is None else (("str", test.mode, words), neg)
        if isinstance(test, ast.Hanzi):
            return ("hanzi",), neg
        return None

    def quantified(self, node: ast.Quantified) -> Any:
        x = node.subject.name
        found = self.element_key(node.test)
        if found is None:
            return self.unknown(node)
        test, neg = found

        def atom(kind: str, holds: bool) -> _Atom:  # "any" / "all" are false on a missing list
            return _Atom((kind, x, test), holds, x)

        present = _Present(x, True)
        if node.kind == "any":
            return ("and", (present, atom("all", False))) if neg else atom("any", True)
        if node.kind == "all":
            return ("and", (present, atom("any", False))) if neg else atom("all", True)
        # no x t == not (any x t); no x (not t) == x is missing or all x t
        return ("or", (_Present(x, False), atom("all", True))) if neg else atom("any", False)

    # -- disjunctive normal form
    def dnf(self, f: Any, neg: bool = False) -> list[frozenset[_Literal]]:
        if isinstance(f, tuple):
            if f[0] == "not":
                return self.dnf(f[1], not neg)
            parts = [self.dnf(g, neg) for g in f[1]]
            return self.product(parts) if (f[0] == "and") != neg else self.union(parts)
        if neg:
            return self.dnf(_negate(f), False)
        conj = frozenset({f})
        return [] if self.contradicts(conj) else [conj]

    def product(self, parts: list[list[frozenset[_Literal]]]) -> list[frozenset[_Literal]]:
        acc: list[frozenset[_Literal]] = [frozenset()]
        for part in sorted(parts, key=len):
            out: dict[frozenset[_Literal], None] = {}
            for a in acc:
                for b in part:
                    c = a | b
                    if c not in out and not self.contradicts(c):
                        out[c] = None
                        if len(out) > DNF_LIMIT:
                            raise _TooBig
            acc = list(out)
            if not acc:
                break
        return acc

    @staticmethod
    def union(parts: list[list[frozenset[_Literal]]]) -> list[frozenset[_Literal]]:
        out = list(dict.fromkeys(c for part in parts for c in part))
        if len(out) > DNF_LIMIT:
            raise _TooBig
        return out

    def never(self, f: Any) -> bool | None:
        """True when `f` can never hold, False when it may, None when too big to tell."""
        try:
            return not self.dnf(f)
        except _TooBig:
            return None

    # -- contradictions
    def contradicts(self, conj: frozenset[_Literal]) -> bool:
        reason = self.contradiction(conj)
        if reason:
            self.reasons.add(reason)
        return reason is not None

    def contradiction(self, conj: frozenset[_Literal]) -> str | None:
        present: dict[str, bool] = {}
        needed: set[str] = set()
        atoms: dict[tuple[Any, ...], bool] = {}
        orders: dict[tuple[str, str], frozenset[str]] = {}
        tests: dict[str, list[_Cmp | _In]] = {}
        for lit in conj:
            if isinstance(lit, _Present):
                if present.setdefault(lit.path, lit.present) != lit.present:
                    return f"{lit.path} 不能既缺失又有值"
            elif isinstance(lit, _Atom):
                if atoms.setdefault(lit.key, lit.holds) != lit.holds:
                    return f"对 {lit.path or '同一事实'} 的同一检验既要成立又要不成立"
                if lit.holds and lit.path:
                    needed.add(lit.path)
            elif isinstance(lit, _Rel):
                key = (lit.a, lit.b)
                orders[key] = orders.get(key, _ORDER) & lit.order
                needed.update(key)
            else:
                tests.setdefault(lit.path, []).append(lit)
                needed.add(lit.path)
        for path, is_present in present.items():
            if is_present:
                continue
            spec = self.specs.get(path)
            if spec is not None and spec.always_present:
                return f"{path} {_NEVER_MISSING}"
            if path in needed:
                return f"{path} 缺失时，对它的检验都不成立"
        for (a, b), order in orders.items():
            if not order:
                return f"{a} 与 {b} 的比较互相矛盾"
        for path, lits in tests.items():
            if self.empty_domain(path, lits):
                return f"对 {path} 的条件互相矛盾"
        return None

    def empty_domain(self, path: str, lits: list[_Cmp | _In]) -> bool:
        """True when no valid value of `path` passes every test (sure answers only)."""
        spec = self.specs.get(path)
        kind = spec.kind if spec else "?"
        form = self.item.fields.get(path)
        try:
            return _Domain(kind, spec, form).empty(lits)
        except (TypeError, ValueError):  # a mistyped constant: the compiler reports it
            return False


class _Domain:
    """The values a fact may take: a finite set (boolean, enum, or `==` / `in`) or an interval
    (integer, number, date; integers and dates are whole steps)."""

    def __init__(self, kind: str, spec: FieldSpec | None, form: Any):
        self.kind = kind
        self.ordered = kind in ("integer", "number", "date")
        self.discrete = kind in ("integer", "date")
        self.lo: tuple[float, bool] = (-math.inf, True)
        self.hi: tuple[float, bool] = (math.inf, True)
        self.base: set[Any] | None = None
        if kind == "boolean":
            self.base = {True, False}
        elif kind == "enum" and spec is not None:
            self.base = set(spec.enum_values)
        if form is not None and kind in ("integer", "number"):
            if form.minimum is not None:
                self.lower(form.minimum, not form.exclusive_min)
            if form.maximum is not None:
                self.upper(form.maximum, True)

    def num(self, value: Any) -> float:
        if self.kind == "date":
            if not isinstance(value, str):
                raise TypeError(value)
            return float(dt.date.fromisoformat(value).toordinal())
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(value)
        return float(value)

    def lower(self, value: Any, inclusive: bool) -> None:
        v = self.num(value)
        if (v, not inclusive) > (self.lo[0], not self.lo[1]):
            self.lo = (v, inclusive)

    def upper(self, value: Any, inclusive: bool) -> None:
        v = self.num(value)
        if (v, inclusive) < (self.hi[0], self.hi[1]):
            self.hi = (v, inclusive)

    def bounds(self) -> tuple[float, float] | None:
        """The closed interval [lo, hi] of allowed values (whole steps when discrete)."""
        (lo, lo_in), (hi, hi_in) = self.lo, self.hi
        if self.discrete:
            if math.isfinite(lo):
                lo = math.ceil(lo) if lo_in else math.floor(lo) + 1
            if math.isfinite(hi):
                hi = math.floor(hi) if hi_in else math.ceil(hi) - 1
            return (lo, hi) if lo <= hi else None
        if lo > hi or (lo == hi and not (lo_in and hi_in)):
            return None
        return lo, hi

    def empty(self, lits: list[_Cmp | _In]) -> bool:
        allowed: set[Any] | None = None
        excluded: set[Any] = set()
        for lit in lits:
            if isinstance(lit, _In):
                if lit.negated:
                    excluded |= lit.values
                else:
                    allowed = set(lit.values) if allowed is None else allowed & lit.values
            elif lit.op == "==":
                allowed = {lit.value} if allowed is None else allowed & {lit.value}
            elif lit.op == "!=":
                excluded.add(lit.value)
            elif self.ordered:
                if lit.op in ("<", "<="):
                    self.upper(lit.value, lit.op == "<=")
                else:
                    self.lower(lit.value, lit.op == ">=")
        if self.base is not None:
            allowed = set(self.base) if allowed is None else allowed & self.base
        interval = self.bounds() if self.ordered else None
        if self.ordered and interval is None:
            return True
        if allowed is not None:
            return not any(self.fits(v, excluded, interval) for v in allowed)
        if interval is not None and interval[0] == interval[1]:  # a single point
            return any(self.num(v) == interval[0] for v in excluded)
        return False

    def fits(self, value: Any, excluded: set[Any], interval: tuple[float, float] | None) -> bool:
        if value in excluded:
            return False
        if not self.ordered:
            return True
        v = self.num(value)
        if self.kind == "integer" and not v.is_integer():
            return False
        assert interval is not None
        lo_ok = v > interval[0] or (v == interval[0] and (self.discrete or self.lo[1]))
        hi_ok = v < interval[1] or (v == interval[1] and (self.discrete or self.hi[1]))
        return lo_ok and hi_ok


# -- warnings (MP4xx) -----------------------------------------------------------------------


class _Warnings:
    def __init__(self, compiled: CompiledItem, tree: yaml.Node):
        self.c = compiled
        self.item = compiled.item
        self.top = _pairs(tree)
        self.logic = _Logic(self.item)
        self.out: list[Diagnostic] = []
        self.formulas: dict[int, Any] = {}

    def run(self) -> list[Diagnostic]:
        never = self.never_rules()
        self.no_approve(never)
        self.unread_fields()
        self.uncited_bases()
        self.unused_lists()
        self.unreachable_outputs(never)
        return self.out

    # -- helpers
    def warn(self, where: yaml.Node | tuple[int, int] | None, code: str, message: str) -> None:
        line, column = (
            (1, 1) if where is None else where if isinstance(where, tuple) else _at(where)
        )
        self.out.append(Diagnostic(self.item.source, line, column, code, message, WARNING))

    def f(self, cond: Condition | None) -> Any:
        if cond is None:
            return TRUE
        if id(cond) not in self.formulas:
            self.formulas[id(cond)] = self.logic.formula(cond.tree)
        return self.formulas[id(cond)]

    def why_never(self, formula: Any) -> tuple[bool, str]:
        """(never matches, the contradictions found)."""
        self.logic.reasons = set()
        never = self.logic.never(formula)
        reasons = self.logic.reasons
        # "x is never missing" also prunes the missing-branch of every negation; it explains
        # the verdict only when nothing else does.
        telling = {r for r in reasons if not r.endswith(_NEVER_MISSING)} or reasons
        return bool(never), "；".join(sorted(telling))

    def key(self, section: str, name: str) -> yaml.Node | None:
        return _pairs(self.top.get(section, (None, None))[1]).get(name, (None, None))[0]

    def rule_node(self, rule_id: str) -> yaml.Node | None:
        rules = self.top.get("rules", (None, None))[1]
        for entry in rules.value if isinstance(rules, yaml.SequenceNode) else []:
            rid = _pairs(entry).get("id")
            if rid and rid[1].value == rule_id:
                return entry
        return None

    # -- MP401
    def never_rules(self) -> set[str]:
        never: set[str] = set()
        for rule in self.item.rules:
            sure, why = self.why_never(self.f(rule.when))
            if sure or rule_key(rule.id) in self.c.never:
                never.add(rule.id)
                detail = f"（{why}）" if why else ""
                self.warn(
                    rule.when.locate(0),
                    "MP401",
                    f"规则 {rule.id} 的条件永远不成立{detail}，这条规则不会起作用",
                )
        for m in self.item.materials:
            if m.when is None:
                continue
            sure, why = self.why_never(self.f(m.when))
            if sure or material_key(m.id) in self.c.never:
                detail = f"（{why}）" if why else ""
                self.warn(
                    m.when.locate(0),
                    "MP401",
                    f"材料 {m.id} 的 when 永远不成立{detail}，这份材料永远不会被要求",
                )
        return never

    # -- MP402
    def no_approve(self, never: set[str]) -> None:
        where = self.top.get("rules", (None, None))[0]
        name = f"事项 {self.item.code}（{self.item.name}）"  # no space after the full-width ）
        approves = [r for r in self.item.rules if r.outcome == "APPROVE"]
        if not approves:
            self.warn(where, "MP402", f"{name}没有结果为 APPROVE 的规则，永远不能秒批")
            return
        live = [r for r in approves if r.id not in never]
        if not live:
            ids = "、".join(r.id for r in approves)
            self.warn(where, "MP402", f"{name}的 APPROVE 规则 {ids} 都永远不会匹配，永远不能秒批")
            return
        others = [r for r in self.item.rules if r.outcome != "APPROVE"]
        for rule in live:
            f = ("and", (self.f(rule.when), *(("not", self.f(o.when)) for o in others)))
            if self.logic.never(f) is not True:
                return  # this rule can approve (or the check gave up)
        ids = "、".join(r.id for r in live)
        self.warn(
            where,
            "MP402",
            f"{name}永远不能秒批：APPROVE 规则 {ids} 匹配时，"
            "总有 REJECT 或 MANUAL_REVIEW 规则同时匹配",
        )

    # -- MP403
    def unread_fields(self) -> None:
        reads: set[str] = set()
        for cond in conditions_of(self.item):
            reads.update(ast.paths_of(cond.tree))
        for fld in self.item.fields.values():
            if fld.derived:
                reads.add(fld.derive_from)
        for fld in self.item.fields.values():
            if fld.path in reads or fld.path == APPLICATION_DATE:
                continue
            label = f"（{fld.label}）" if fld.label else " "
            if fld.derived:
                self.warn(
                    self.key("derived", fld.path),
                    "MP403",
                    f"派生字段 {fld.path}{label}没有被任何条件读取",
                )
            elif not fld.required:
                self.warn(
                    self.key("form", fld.path),
                    "MP403",
                    f"选填字段 {fld.path}{label}没有被任何条件或派生字段读取，填与不填都不影响决定",
                )

    # -- MP404
    def uncited_bases(self) -> None:
        cited = {r.basis for r in self.item.rules} | {self.item.materials_basis}
        for i, (bid, basis) in enumerate(self.item.legal_basis.items()):
            if i == 0 or bid in cited:
                continue  # the first entry is the item's 设定依据, shown in the catalogue
            self.warn(
                self.key("legal_basis", bid),
                "MP404",
                f"依据 {bid}（{basis.citation}）没有被任何规则或 materials_basis 引用",
            )

    # -- MP405
    def unused_lists(self) -> None:
        local = _pairs(self.top.get("lists", (None, None))[1])
        used: set[str] = set()
        for cond in conditions_of(self.item):
            used.update(ast.list_refs(cond.tree))
        for _, value in local.values():
            union = _pairs(value).get("union")
            if union and isinstance(union[1], yaml.SequenceNode):
                used.update(n.value for n in union[1].value if isinstance(n, yaml.ScalarNode))
        for name, (key_node, _) in local.items():
            if name not in used:
                self.warn(key_node, "MP405", f"清单 {name} 已定义，但没有条件或清单使用它")

    # -- MP406
    def unreachable_outputs(self, never: set[str]) -> None:
        for rule in self.item.rules:
            if rule.id in never or not rule.outputs:
                continue
            outputs = _pairs(_pairs(self.rule_node(rule.id)).get("outputs", (None, None))[1])
            for name, cases in rule.outputs:
                node = outputs.get(name, (None, None))[1]
                entries = node.value if isinstance(node, yaml.SequenceNode) else []
                for i in range(len(cases)):
                    where = entries[i] if i < len(entries) else node
                    why = self.unreachable(rule.when, cases, i)
                    if why:
                        self.warn(
                            where, "MP406", f"规则 {rule.id} 的输出 {name} 第 {i + 1} 项{why}"
                        )

    def unreachable(self, when: Condition, cases: tuple[Any, ...], i: int) -> str:
        fallback = next((j for j in range(i) if cases[j].when is None), None)
        if fallback is not None:
            return f"在不带 when 的第 {fallback + 1} 项之后，永远不会被用到"
        case = cases[i]
        if case.when is None:
            return ""  # the final fallback: the loader asks for one even when it is unreachable
        alone = ("and", (self.f(when), self.f(case.when)))
        if self.logic.never(alone):
            return "的 when 在规则条件成立时永远不成立，永远不会被用到"
        earlier = tuple(("not", self.f(c.when)) for c in cases[:i])
        if earlier and self.logic.never(("and", (alone, *earlier))):
            return "已被前面各项完全覆盖，永远不会被用到"
        return ""
