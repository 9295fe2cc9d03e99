""" "Can never hold": whether a condition is false for every valid case of an item.

It is decided on the condition itself, not by running cases: negation is pushed down to leaf
tests (with the language's rule that a test on a missing fact is false), the condition is put in
disjunctive normal form, and each conjunct is checked for a contradiction (an empty numeric or
date interval, two different required values, `x is missing` with a test on x, a fact that is
always present tested as missing, a test and its negation, ...). A condition never holds when
every conjunct is contradictory. The check is sound but not complete: it only claims "never"
when it is sure, and gives up (claims nothing) beyond `DNF_LIMIT` conjuncts.

A formula is a literal, ("and" | "or", (formulas...)) or ("not", formula).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

from miaopi_server.lang import ast
from miaopi_server.lang.compiler import Compares, FieldSpec
from miaopi_server.rules.compile import field_specs
from miaopi_server.rules.model import Item

DNF_LIMIT = 256  # conjuncts; beyond this the contradiction check gives up (claims nothing)
_NEVER_MISSING = "总有值（必填、有缺省值或由必填字段派生），不会缺失"


def never_holds(item: Item, condition: ast.Expr) -> bool | None:
    """True when `condition` can never hold for a valid case of `item`; False when it may (or
    the check cannot tell a contradiction); None when its normal form is too large to check."""
    logic = ItemLogic(item)
    return logic.never(logic.formula(condition))


@dataclass(frozen=True)
class _Present:
    """`x is present` (or, when not `present`, `x is missing`)."""

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
TRUE: tuple[Any, ...] = ("and", ())  # always holds, as an absent `when` does
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


class ItemLogic:
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
            if isinstance(node, ast.StringTest) and spec and spec.compares is Compares.TEXT_LIST:
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

    def never_because(self, f: Any) -> tuple[bool, str]:
        """(`f` surely never holds, the contradictions found, joined for a message)."""
        self.reasons = set()
        never = self.never(f)
        reasons = self.reasons
        # "x is never missing" also prunes the missing-branch of every negation; it explains
        # the verdict only when nothing else does.
        telling = {r for r in reasons if not r.endswith(_NEVER_MISSING)} or reasons
        return bool(never), "；".join(sorted(telling))

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
        # How the field compares (its type's declaration), not the type's name: a new field
        # type gets the same analysis as the others that compare alike.
        compares = spec.compares if spec is not None else None
        self.kind = kind
        self.dates = compares is Compares.DATE
        self.ordered = compares is not None and compares.ordered
        # Whole steps: dates, and numbers the form declares integral.
        self.discrete = compares is Compares.DATE or (
            compares is Compares.NUMBER and form is not None and form.kind == "integer"
        )
        self.lo: tuple[float, bool] = (-math.inf, True)
        self.hi: tuple[float, bool] = (math.inf, True)
        self.base: set[Any] | None = None
        if compares is Compares.BOOLEAN:
            self.base = {True, False}
        elif compares is Compares.CHOICE and spec is not None:
            self.base = set(spec.enum_values)
        if form is not None and compares is Compares.NUMBER:
            if form.minimum is not None:
                self.lower(form.minimum, not form.exclusive_min)
            if form.maximum is not None:
                self.upper(form.maximum, True)

    def num(self, value: Any) -> float:
        if self.dates:
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
        if self.discrete and not self.dates and not v.is_integer():
            return False
        assert interval is not None
        lo_ok = v > interval[0] or (v == interval[0] and (self.discrete or self.lo[1]))
        hi_ok = v < interval[1] or (v == interval[1] and (self.discrete or self.hi[1]))
        return lo_ok and hi_ok
