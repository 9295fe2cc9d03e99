"""What durable_rules can take in one ruleset, and how an item's engine rules are shaped to fit.

The engine's alpha network keeps fixed-size tables (durable-rules 2.0.28, measured and read in
its C source; docs/ENGINE.md): a stack of 64 pending matches per fact (more -> error 303), 512
children per test (the 512th makes every later lookup spin forever; ~498 shared with the rest
of the set already corrupts the heap), 255 rules ending on one test (the 256th overflows into
another table: a rule that did not match is reported as fired), 128 `$or` continuations per
test, 254 properties per fact (more -> 302 / 309).

All of them are bounded by one number, the *cost* of the rules in a ruleset: an upper bound on
how many alpha-network pushes one fact can cause (every test matching). The compiler keeps each
engine ruleset ("part") at or below `PART_BUDGET`, far below 64, so none of the tables above can
fill, whatever a rule file says:
- a condition costing more than the budget is split into its alternatives (disjunctive normal
  form), packed into several engine rules `name#0`, `name#1`, ...; any of them firing means the
  rule matched;
- an item's engine rules are packed into parts of at most `PART_BUDGET`, each registered as its
  own engine ruleset and asserted with only the facts its rules read; fired sets are merged.
Only what cannot be spread is refused (located errors in rules/compile.py): one alternative
costing more than a whole part, more than `MAX_ALTERNATIVES` alternatives in one condition, or
more than `MAX_PARTS` parts in one item.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

ENGINE_STACK = 64  # durable's MAX_STACK_SIZE: pending matches per asserted fact
PART_BUDGET = 48  # cost of one engine ruleset, its warm-up rule included (margin below 64)
WARMUP_COST = 1
MAX_ALTERNATIVES = 2048  # alternatives one condition may expand to when it must be split
MAX_PARTS = 64  # engine rulesets per item (each costs ~250 KB and one assert per decision)
PART_SEPARATOR = "#"  # engine rule "name#k" is part k of rule "name"

_LOGIC = ("$and", "$or")
_QUANTIFIERS = ("$iany", "$iall")


def rule_of(engine_rule: str) -> str:
    """The rule an engine rule belongs to (a split rule's parts all map to it)."""
    return engine_rule.partition(PART_SEPARATOR)[0]


def _shape(cond: Mapping[str, Any]) -> tuple[int, int]:
    """(pushes, ways): an upper bound on the alpha-network pushes `cond` causes when every test
    matches, and how many ways lead to its end (a test after an `$or` is visited once per
    branch that matched, through the `$or`'s forwarding node)."""
    pushes, ways = 0, 1
    for key, value in cond.items():
        if key == "$and":
            for c in value:
                p, w = _shape(c)
                pushes += ways * p
                ways *= w
        elif key == "$or":
            branch_pushes = branch_ways = 0
            for c in value:
                p, w = _shape(c)
                branch_pushes += p + w  # its tests, then one push of the forwarding node per way
                branch_ways += w
            pushes += ways * branch_pushes
            ways *= branch_ways
        elif key in _QUANTIFIERS:
            for inner in value.values():
                pushes += ways * (1 + _shape(inner)[0])
        else:
            pushes += ways
    return pushes, ways


def cost(cond: Mapping[str, Any]) -> int:
    """Upper bound on the engine's pending matches caused by one rule with this condition."""
    return _shape(cond)[0]


class TooManyAlternatives(Exception):
    pass


def alternatives(cond: dict[str, Any], limit: int = MAX_ALTERNATIVES) -> list[dict[str, Any]]:
    """`cond` as an `$or` of conjunctions (no `$or` inside); raises TooManyAlternatives past
    `limit`. Quantifier bodies never hold an `$or` (the compiler makes sure), so they are atoms."""

    def dnf(c: dict[str, Any]) -> list[list[dict[str, Any]]]:
        if len(c) != 1:
            return product([dnf({k: v}) for k, v in c.items()])
        ((key, value),) = c.items()
        if key == "$or":
            out = [conj for branch in value for conj in dnf(branch)]
            if len(out) > limit:
                raise TooManyAlternatives
            return out
        if key == "$and":
            return product([dnf(x) for x in value])
        return [[c]]

    def product(parts: list[list[list[dict[str, Any]]]]) -> list[list[dict[str, Any]]]:
        acc: list[list[dict[str, Any]]] = [[]]
        for part in parts:
            if len(acc) * len(part) > limit:
                raise TooManyAlternatives
            acc = [a + b for a in acc for b in part]
        return acc

    return [conj[0] if len(conj) == 1 else {"$and": conj} for conj in dnf(cond)]


def pack(items: list[tuple[str, int]], budget: int) -> Iterator[list[str]]:
    """Group (name, cost) in order into runs whose costs sum to at most `budget` (next fit)."""
    run: list[str] = []
    used = 0
    for name, c in items:
        if run and used + c > budget:
            yield run
            run, used = [], 0
        run.append(name)
        used += c
    if run:
        yield run


def split_rule(
    name: str, cond: dict[str, Any], budget: int = PART_BUDGET - WARMUP_COST
) -> dict[str, dict[str, Any]] | None:
    """{engine rule: condition} for one rule: itself when it fits one part, else its
    alternatives packed into `name#k` rules that each fit. None when an alternative alone is
    over budget (raises TooManyAlternatives when there are too many alternatives)."""
    if cost(cond) <= budget:
        return {name: cond}
    alts = alternatives(cond)
    costs = [cost(a) for a in alts]
    if max(costs) > budget:
        return None
    out: dict[str, dict[str, Any]] = {}
    # In an `$or`, each alternative adds its own forwarding push (+1) and the `$or` one more.
    runs = pack([(str(i), c + 1) for i, c in enumerate(costs)], budget - 1)
    for k, run in enumerate(runs):
        group = [alts[int(i)] for i in run]
        out[f"{name}{PART_SEPARATOR}{k}"] = group[0] if len(group) == 1 else {"$or": group}
    return out


def partition(conditions: Mapping[str, dict[str, Any]]) -> list[list[str]]:
    """Engine rule names grouped into parts of at most PART_BUDGET (with the warm-up rule),
    in order. A rule costing more than a part on its own gets a part of its own (split_rule
    keeps that from happening for compiled items)."""
    items = [(name, cost(cond)) for name, cond in conditions.items()]
    return list(pack(items, PART_BUDGET - WARMUP_COST))


def reads(cond: Mapping[str, Any]) -> Iterator[str]:
    """The fact paths (dotted, as the engine sees them) one condition tests."""
    for key, value in cond.items():
        if key in _LOGIC:
            for c in value:
                yield from reads(c)
        elif key in _QUANTIFIERS:
            yield from value
        elif key.startswith("$"):  # a comparison {op: {path: value}}
            for path, operand in value.items():
                yield path
                if isinstance(operand, dict) and "$m" in operand:
                    yield operand["$m"]
        else:
            yield key
            if isinstance(value, dict) and "$m" in value:
                yield value["$m"]
