"""Probes: small derived booleans computed in Python before a case reaches the rules engine.

durable_rules cannot test presence safely (`$nex` can spin forever), its regular-expression
engine crashes or mis-matches on escapes and CJK ranges, it refuses an `$or` inside `$iall` at
random, and a few hundred `$or` branches (one per value of `x in [...]`) crash or hang it. So
presence, emptiness, string tests and membership (`x in S`, `any / all x in S`) are computed
here, stored under `_p.<key>` in the asserted fact, and tested in the engine by equality. A
probe whose subject is missing is itself absent, so it never matches.
"""

from __future__ import annotations

import operator
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from miaopi_server.lang import ast
from miaopi_server.lang.dates import days_between, shift_text

MISSING: Any = object()
Getter = Callable[[str], Any]
COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def is_hanzi(text: str) -> bool:
    """Non-empty and every character is a CJK unified ideograph (规范汉字 for names)."""
    return bool(text) and all(
        unicodedata.name(ch, "").startswith("CJK UNIFIED IDEOGRAPH") for ch in text
    )


def string_test(text: str, mode: str, words: tuple[str, ...]) -> bool:
    if mode == "contains":
        return any(w in text for w in words)
    if mode == "starts":
        return text.startswith(words)
    return text.endswith(words)


def term_value(term: tuple[Any, ...], get: Getter) -> Any:
    """The value of a date-arithmetic term: ("path", name), ("const", value),
    ("shift", term, amount, unit) or ("days", term, term); MISSING when a fact is missing or a
    date is moved off the calendar."""
    kind = term[0]
    if kind == "const":
        return term[1]
    if kind == "path":
        return get(term[1])
    if kind == "shift":
        base = term_value(term[1], get)
        moved = None if base is MISSING else shift_text(base, term[2], term[3])
        return MISSING if moved is None else moved
    a, b = term_value(term[1], get), term_value(term[2], get)
    return MISSING if a is MISSING or b is MISSING else days_between(a, b)


def term_of(side: ast.Side) -> tuple[Any, ...]:
    """The position-free form `term_value` computes, of a type-checked side (never a list
    element)."""
    if isinstance(side, ast.Path):
        return ("path", side.name)
    if isinstance(side, ast.Const):
        return ("const", side.value)
    if isinstance(side, ast.Shift):
        return ("shift", term_of(side.base), side.amount, side.unit)
    if isinstance(side, ast.DaysBetween):
        return ("days", term_of(side.first), term_of(side.second))
    raise ValueError("a list element has no value outside any / all / no")


@dataclass(frozen=True)
class Probe:
    """One derived boolean. `quant` set means the test runs over the elements of a list."""

    kind: Literal["present", "empty", "string", "hanzi", "member", "calc"]
    path: str
    mode: str = ""
    # strings for string tests; a membership probe's values; for "calc" (a comparison with
    # date arithmetic, computed whole) (left term, operator, right term, negated)
    words: tuple[Any, ...] = ()
    quant: Literal["", "any", "all"] = ""

    @cached_property
    def _members(self) -> frozenset[Any]:
        """The values of a membership probe as a set, built once (lists may be long)."""
        return frozenset(self.words)

    def compute(self, get: Getter) -> bool | None:
        if self.kind == "calc":  # never absent: the missing-fact rule is applied here
            left, op, right, negated = self.words
            a, b = term_value(left, get), term_value(right, get)
            held = a is not MISSING and b is not MISSING and COMPARE[op](a, b)
            return bool(held != negated)
        value = get(self.path)
        if self.kind == "present":
            return value is not MISSING
        if value is MISSING:
            return None
        if self.kind == "empty":
            return len(value) == 0
        test = self._element_test()
        if self.quant == "any":
            return any(test(v) for v in value)
        if self.quant == "all":
            return all(test(v) for v in value)
        return test(value)

    def _element_test(self) -> Callable[[str], bool]:
        if self.kind == "hanzi":
            return is_hanzi
        if self.kind == "member":
            return self._members.__contains__
        mode, words = self.mode, tuple(str(w) for w in self.words)
        return lambda text: string_test(text, mode, words)


class ProbeTable:
    """The probes of one item, deduplicated; keys are stable in order of first use."""

    def __init__(self) -> None:
        self._keys: dict[Probe, str] = {}

    def key(self, probe: Probe) -> str:
        if probe not in self._keys:
            self._keys[probe] = f"p{len(self._keys)}"
        return self._keys[probe]

    def items(self) -> list[tuple[str, Probe]]:
        return [(k, p) for p, k in self._keys.items()]
