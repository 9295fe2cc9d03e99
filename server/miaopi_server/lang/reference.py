"""Reference semantics of the condition language, evaluated directly in Python.

Decisions never use this: they run in durable_rules. It exists as the executable specification
that the compiler is tested against (same answer on every condition and every case), and to say
in `explain` whether each sub-condition held.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from miaopi_server.lang import ast
from miaopi_server.lang.dates import days_between, shift_text
from miaopi_server.lang.probes import COMPARE, MISSING, Getter, is_hanzi, string_test


def evaluate(node: ast.Expr, get: Getter, lists: Mapping[str, tuple[str, ...]]) -> bool:
    """True when the condition holds for the facts behind `get` (MISSING for absent facts)."""

    def values(vs: ast.ValueSet) -> tuple[Any, ...]:
        if isinstance(vs, ast.ListLiteral):
            return tuple(c.value for c in vs.items)
        return lists[vs.name]

    def operand(o: ast.Side, element: Any) -> Any:
        if isinstance(o, ast.Const):
            return o.value
        if isinstance(o, ast.Element):
            return element
        if isinstance(o, ast.Shift):  # a date moved off the calendar is like a missing fact
            base = operand(o.base, element)
            moved = MISSING if base is MISSING else shift_text(base, o.amount, o.unit)
            return MISSING if moved is None else moved
        if isinstance(o, ast.DaysBetween):
            a, b = operand(o.first, element), operand(o.second, element)
            return MISSING if a is MISSING or b is MISSING else days_between(a, b)
        return get(o.name)

    def test(n: ast.Expr, element: Any = MISSING) -> bool:
        if isinstance(n, ast.Not):
            return not test(n.operand, element)
        if isinstance(n, ast.And):
            return all(test(o, element) for o in n.operands)
        if isinstance(n, ast.Or):
            return any(test(o, element) for o in n.operands)
        if isinstance(n, ast.Presence):
            return (get(n.subject.name) is MISSING) == n.missing
        if isinstance(n, ast.Compare):
            left, right = operand(n.left, element), operand(n.right, element)
            if left is MISSING or right is MISSING:
                return False
            return COMPARE[n.op](left, right)
        if isinstance(n, ast.Quantified):
            items = get(n.subject.name)
            if items is MISSING:  # like any test on a missing fact (lists default to [])
                return False
            hits = [test(n.test, e) for e in items]
            return {"any": any(hits), "all": all(hits), "no": not any(hits)}[n.kind]
        subject = operand(n.subject, element)
        if subject is MISSING:
            return False
        if isinstance(n, ast.Truthy):
            return subject is True
        if isinstance(n, ast.Emptiness):
            return (len(subject) == 0) == n.empty
        if isinstance(n, ast.Member):
            return (subject in values(n.values)) != n.negated
        if isinstance(n, ast.Hanzi):
            return is_hanzi(subject)
        if isinstance(n, ast.StringTest):
            words = tuple(values(n.words))
            if isinstance(subject, list):  # `list-field contains word`: an element equals it
                return any(w in subject for w in words)
            return string_test(subject, n.mode, words)
        raise AssertionError(f"unexpected node {n!r}")

    return test(node)
