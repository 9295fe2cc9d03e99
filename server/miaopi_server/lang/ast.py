"""Syntax tree of rule conditions. Every node keeps `pos`, its character offset in the source."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal as _Lit

Scalar = str | int | float | bool
CompareOp = _Lit["==", "!=", "<", "<=", ">", ">="]
StringMode = _Lit["contains", "starts", "ends"]

NEGATED_OP: dict[str, CompareOp] = {
    "==": "!=",
    "!=": "==",
    "<": ">=",
    ">=": "<",
    ">": "<=",
    "<=": ">",
}
FLIPPED_OP: dict[str, CompareOp] = {
    "==": "==",
    "!=": "!=",
    "<": ">",
    ">": "<",
    "<=": ">=",
    ">=": "<=",
}


@dataclass(frozen=True)
class Path:
    """A fact reference such as `applicant.age`."""

    name: str
    pos: int


@dataclass(frozen=True)
class Element:
    """The current list element inside `any` / `all` / `no`."""

    pos: int


@dataclass(frozen=True)
class Const:
    """A literal string, number or boolean."""

    value: Scalar
    pos: int


@dataclass(frozen=True)
class ListLiteral:
    """An inline list of literals: `["a", "b"]`."""

    items: tuple[Const, ...]
    pos: int


@dataclass(frozen=True)
class ListRef:
    """A reference to a named list: `list prohibited_scope`."""

    name: str
    pos: int


Operand = Path | Element | Const
ValueSet = ListLiteral | ListRef
Unit = _Lit["day", "month", "year"]


@dataclass(frozen=True)
class Shift:
    """A date moved by a period: `application.date - 1 year` (amount -1, unit "year").
    Counted as lang/dates.py says (民法典 Art. 200-204)."""

    base: DateTerm
    amount: int
    unit: Unit
    pos: int


@dataclass(frozen=True)
class DaysBetween:
    """`days between a and b`: whole days between two dates, never negative (a number)."""

    first: DateTerm
    second: DateTerm
    pos: int


DateTerm = Path | Const | Shift
Arith = Shift | DaysBetween
Side = Operand | Arith  # what a comparison compares


@dataclass(frozen=True)
class Compare:
    left: Side
    op: CompareOp
    right: Side
    pos: int


@dataclass(frozen=True)
class Member:
    """`x in SET` (or `x not in SET` when negated)."""

    subject: Path | Element
    values: ValueSet
    negated: bool
    pos: int


@dataclass(frozen=True)
class StringTest:
    """`x contains / starts with / ends with` one of some words."""

    subject: Path | Element
    mode: StringMode
    words: ValueSet
    pos: int


@dataclass(frozen=True)
class Hanzi:
    """`x is hanzi`: non-empty and every character is a CJK unified ideograph."""

    subject: Path | Element
    pos: int


@dataclass(frozen=True)
class Presence:
    """`x is missing` (missing=True) or `x is present`."""

    subject: Path
    missing: bool
    pos: int


@dataclass(frozen=True)
class Emptiness:
    """`x is empty` (empty=True) or `x is not empty` for list fields."""

    subject: Path
    empty: bool
    pos: int


@dataclass(frozen=True)
class Truthy:
    """A bare boolean fact used as a condition: `applicant.deceased`."""

    subject: Path
    pos: int


ElementTest = Compare | Member | StringTest | Hanzi


@dataclass(frozen=True)
class Quantified:
    """`any / all / no LIST-FIELD <test on each element>`."""

    kind: _Lit["any", "all", "no"]
    subject: Path
    test: ElementTest
    pos: int


@dataclass(frozen=True)
class Not:
    operand: Expr
    pos: int


@dataclass(frozen=True)
class And:
    operands: tuple[Expr, ...]
    pos: int


@dataclass(frozen=True)
class Or:
    operands: tuple[Expr, ...]
    pos: int


Expr = (
    Compare
    | Member
    | StringTest
    | Hanzi
    | Presence
    | Emptiness
    | Truthy
    | Quantified
    | Not
    | And
    | Or
)


def paths_of(node: Expr) -> list[str]:
    """Fact paths a condition reads, in order of first appearance."""
    seen: dict[str, None] = {}

    def visit(n: object) -> None:
        if isinstance(n, Path):
            seen.setdefault(n.name, None)
        elif isinstance(n, And | Or):
            for o in n.operands:
                visit(o)
        elif isinstance(n, Not):
            visit(n.operand)
        elif isinstance(n, Compare):
            visit(n.left)
            visit(n.right)
        elif isinstance(n, Shift):
            visit(n.base)
        elif isinstance(n, DaysBetween):
            visit(n.first)
            visit(n.second)
        elif isinstance(n, Member | StringTest | Hanzi | Presence | Emptiness | Truthy):
            visit(n.subject)
        elif isinstance(n, Quantified):
            visit(n.subject)
            visit(n.test)

    visit(node)
    return list(seen)


def list_refs(node: Expr) -> list[str]:
    """Names of the named lists a condition uses."""
    names: dict[str, None] = {}

    def visit(n: object) -> None:
        if isinstance(n, ListRef):
            names.setdefault(n.name, None)
        elif isinstance(n, And | Or):
            for o in n.operands:
                visit(o)
        elif isinstance(n, Not):
            visit(n.operand)
        elif isinstance(n, Member | StringTest):
            visit(n.values if isinstance(n, Member) else n.words)
        elif isinstance(n, Quantified):
            visit(n.test)

    visit(node)
    return list(names)
