"""Explain one case rule by rule, for rule authors (`miaopi rules explain`).

Pure: the answer depends only on (catalog, case, `today`). Whether a rule matched is read from
the set of engine rules that fired when the real engine decided the case (`Decision.fired`);
it is never recomputed here. What this module adds is *why*:

- the values each condition read (path -> value, or missing), as the decision reports them;
- for a compound condition (`a and b`, `a or b`, or `not (...)` of one), which of its top-level
  parts held, computed with the reference semantics (`lang.reference.evaluate`). Those part
  results are an explanation only: the verdict is the engine's. If the reference evaluation of
  a whole condition ever disagrees with the engine, the explanation says so
  (`reference_agrees` False) instead of hiding it: that would be a compiler or engine bug.

Every policy rule of the version that decides the case is listed (in rule-file order), then
every output case of every rule, then every material. Raises CaseInvalid / ItemNotFound
exactly as deciding the case does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from miaopi_server.decision.catalog import Catalog
from miaopi_server.decision.decide import Decision
from miaopi_server.decision.validate import Case, validate_case
from miaopi_server.lang import ast
from miaopi_server.lang.parser import ExprSyntaxError, tokenize
from miaopi_server.lang.probes import MISSING, term_value
from miaopi_server.lang.reference import evaluate
from miaopi_server.rules.compile import material_key, output_key, rule_key
from miaopi_server.rules.model import Condition, Item

FactRead = tuple[str, Any]  # (path, value or MISSING)


@dataclass(frozen=True)
class Part:
    """One top-level operand of a compound condition; `held` is the reference semantics'
    answer on this case (explanation only, never used to decide)."""

    source: str
    held: bool
    facts_read: tuple[FactRead, ...]


@dataclass(frozen=True)
class ConditionExplained:
    source: str
    facts_read: tuple[FactRead, ...]
    # "and" / "or" for a compound condition, "not and" / "not or" for `not (a and b)` etc.,
    # "" for a simple one (then `parts` is empty).
    connective: str = ""
    parts: tuple[Part, ...] = ()
    reference_held: bool = False  # the whole condition under the reference semantics


@dataclass(frozen=True)
class RuleExplained:
    """A policy rule: `matched` is true exactly when the engine fired "r:<id>"."""

    rule_id: str
    outcome: str
    message: str
    condition: ConditionExplained
    matched: bool
    never: bool  # the compiler found that its condition can never hold

    @property
    def engine_rule(self) -> str:
        return rule_key(self.rule_id)

    @property
    def reference_agrees(self) -> bool:
        return self.condition.reference_held == self.matched


@dataclass(frozen=True)
class OutputCaseExplained:
    """One case of a rule's output table. `matched`: the engine fired its rule (a fallback case
    without `when` always applies). `selected`: the first applicable case of a matched rule,
    i.e. the one that gives the value when the outcome is not REJECT."""

    rule_id: str
    output: str
    index: int
    value: Any
    condition: ConditionExplained | None  # None: the fallback case
    matched: bool
    selected: bool
    compute: str = ""  # the expression `value` was computed from on this case ("": a constant)

    @property
    def engine_rule(self) -> str | None:
        if self.condition is None:
            return None
        return output_key(self.rule_id, self.output, self.index)

    @property
    def reference_agrees(self) -> bool:
        return self.condition is None or self.condition.reference_held == self.matched


@dataclass(frozen=True)
class MaterialExplained:
    """A material. `matched`: the engine fired "m:<id>", i.e. the material is needed for
    this case and was not submitted (missing, or pending when deferrable). Optional
    materials have no engine rule and never match."""

    material_id: str
    name: str
    need: str
    submitted: bool
    condition: ConditionExplained | None
    matched: bool

    @property
    def engine_rule(self) -> str | None:
        return None if self.need == "optional" else material_key(self.material_id)

    @property
    def required_here(self) -> bool:
        """Whether the material's condition holds (reference semantics; no condition: yes)."""
        return self.need != "optional" and (self.condition is None or self.condition.reference_held)

    @property
    def reference_agrees(self) -> bool:
        if self.need == "optional":
            return not self.matched
        return (self.required_here and not self.submitted) == self.matched


@dataclass(frozen=True)
class Explanation:
    item_code: str
    item_name: str
    version: str
    digest: str
    as_of: dt.date
    rules: tuple[RuleExplained, ...]
    outputs: tuple[OutputCaseExplained, ...]
    materials: tuple[MaterialExplained, ...]
    decision: Decision
    fired: tuple[str, ...] = field(default=())

    @property
    def outcome(self) -> str:
        return self.decision.outcome

    @property
    def disagreements(self) -> list[str]:
        """Engine rules on which the reference semantics disagrees with the engine."""
        out: list[str] = []
        for r in self.rules:
            if not r.reference_agrees:
                out.append(r.engine_rule)
        for o in self.outputs:
            if not o.reference_agrees and o.engine_rule:
                out.append(o.engine_rule)
        for m in self.materials:
            if not m.reference_agrees:
                out.append(m.engine_rule or material_key(m.material_id))
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: missing values are {"path": p, "missing": true}."""
        d = self.decision
        return {
            "item_code": self.item_code,
            "item_name": self.item_name,
            "version": self.version,
            "digest": self.digest,
            "as_of": self.as_of.isoformat(),
            "note": "parts[].held is computed with the reference semantics, explanation only; "
            "matched comes from the rules engine",
            "rules": [
                {
                    "rule_id": r.rule_id,
                    "engine_rule": r.engine_rule,
                    "outcome": r.outcome,
                    "message": r.message,
                    "matched": r.matched,
                    "never": r.never,
                    "reference_agrees": r.reference_agrees,
                    **_condition_dict(r.condition),
                }
                for r in self.rules
            ],
            "outputs": [
                {
                    "rule_id": o.rule_id,
                    "output": o.output,
                    "index": o.index,
                    "value": _jsonable(o.value),
                    **({"compute": o.compute} if o.compute else {}),
                    "engine_rule": o.engine_rule,
                    "matched": o.matched,
                    "selected": o.selected,
                    "reference_agrees": o.reference_agrees,
                    **(_condition_dict(o.condition) if o.condition else {"condition": None}),
                }
                for o in self.outputs
            ],
            "materials": [
                {
                    "material_id": m.material_id,
                    "name": m.name,
                    "need": m.need,
                    "submitted": m.submitted,
                    "engine_rule": m.engine_rule,
                    "matched": m.matched,
                    "reference_agrees": m.reference_agrees,
                    **(_condition_dict(m.condition) if m.condition else {"condition": None}),
                }
                for m in self.materials
            ],
            "decision": {
                "outcome": d.outcome,
                "reasons": [
                    {"rule_id": r.rule_id, "outcome": r.outcome, "message": r.message}
                    for r in d.reasons
                ],
                "outputs": {k: _jsonable(v) for k, v in d.outputs.items()},
                "missing_materials": [m.id for m in d.missing_materials],
                "pending_materials": [m.id for m in d.pending_materials],
                "review_due": d.review_due.isoformat() if d.review_due else None,
            },
            "fired": list(self.fired),
            "disagreements": self.disagreements,
        }


def explain(catalog: Catalog, code: str, facts: Any, materials: Any, today: dt.date) -> Explanation:
    """Decide the case with the real engine and explain every rule of the deciding version."""
    decision = catalog.decide(code, facts, materials, today)  # raises as deciding does
    loaded = catalog.select(code, facts, today)
    item = loaded.item
    # The values the engine saw: the same validation (normalization, defaults, derived facts).
    case = validate_case(item, facts, materials, today)
    fired = frozenset(decision.fired)
    never = loaded.compiled.never

    rules = tuple(
        RuleExplained(
            rule.id,
            rule.outcome,
            rule.message,
            _condition(rule.when, case, item),
            rule_key(rule.id) in fired,
            rule_key(rule.id) in never,
        )
        for rule in item.rules
    )

    outputs: list[OutputCaseExplained] = []
    for rule in item.rules:
        rule_matched = rule_key(rule.id) in fired
        for name, cases in rule.outputs:
            chosen = False
            for i, c in enumerate(cases):
                matched = c.when is None or output_key(rule.id, name, i) in fired
                selected = rule_matched and matched and not chosen
                chosen = chosen or selected
                value = c.value
                if c.compute is not None:  # what it computes to on this case (None: missing)
                    value = term_value(c.compute.term, lambda p: case.values.get(p, MISSING))
                    value = None if value is MISSING else value
                outputs.append(
                    OutputCaseExplained(
                        rule.id,
                        name,
                        i,
                        value,
                        _condition(c.when, case, item) if c.when else None,
                        matched,
                        selected,
                        c.compute.source if c.compute else "",
                    )
                )

    mats = tuple(
        MaterialExplained(
            m.id,
            m.name,
            m.need,
            m.id in case.materials,
            _condition(m.when, case, item) if m.when else None,
            material_key(m.id) in fired,
        )
        for m in item.materials
    )
    return Explanation(
        item.code,
        item.name,
        item.version,
        item.digest,
        decision.as_of,
        rules,
        tuple(outputs),
        mats,
        decision,
        decision.fired,
    )


# -- internals


def _read(case: Case, node: ast.Expr) -> tuple[FactRead, ...]:
    return tuple((p, case.values.get(p, MISSING)) for p in ast.paths_of(node))


def _condition(cond: Condition, case: Case, item: Item) -> ConditionExplained:
    def get(path: str) -> Any:
        return case.values.get(path, MISSING)

    def held(node: ast.Expr) -> bool:
        return evaluate(node, get, item.lists)

    tree = cond.tree
    negated = False
    if isinstance(tree, ast.Not) and isinstance(tree.operand, ast.And | ast.Or):
        negated, tree = True, tree.operand
    parts: tuple[Part, ...] = ()
    connective = ""
    if isinstance(tree, ast.And | ast.Or):
        keyword = "and" if isinstance(tree, ast.And) else "or"
        connective = f"not {keyword}" if negated else keyword
        texts = split_top_level(cond.source, keyword, len(tree.operands))
        parts = tuple(
            Part(text if text is not None else unparse(op), held(op), _read(case, op))
            for op, text in zip(tree.operands, texts, strict=True)
        )
    return ConditionExplained(
        cond.source, _read(case, cond.tree), connective, parts, held(cond.tree)
    )


def split_top_level(source: str, keyword: str, count: int) -> list[str | None]:
    """The source text of each top-level `keyword` ("and" / "or") operand of `source`, as the
    author wrote it. Outer parentheses and a leading `not` around the whole are looked
    through. [None] * count when the split does not give `count` parts (then callers fall back
    to `unparse`)."""
    try:
        tokens = tokenize(source)[:-1]  # drop the end token
    except ExprSyntaxError:
        return [None] * count

    def wrapped(ts: list[Any]) -> bool:
        """ts is "( ... )" with the first parenthesis closed by the last one."""
        if len(ts) < 2 or ts[0].text != "(" or ts[-1].text != ")":
            return False
        depth = 0
        for n, t in enumerate(ts):
            if t.kind == "op" and t.text in "()":
                depth += 1 if t.text == "(" else -1
                if depth == 0 and n != len(ts) - 1:
                    return False
        return True

    while True:
        if tokens and tokens[0].kind == "keyword" and tokens[0].text == "not":
            rest = tokens[1:]
            if wrapped(rest):
                tokens = rest[1:-1]
                continue
        if wrapped(tokens):
            tokens = tokens[1:-1]
            continue
        break
    segments: list[list[Any]] = [[]]
    depth = 0
    for t in tokens:
        if t.kind == "op" and t.text in ("(", ")"):
            depth += 1 if t.text == "(" else -1
        if depth == 0 and t.kind == "keyword" and t.text == keyword:
            segments.append([])
            continue
        segments[-1].append(t)
    if len(segments) != count or any(not s for s in segments):
        return [None] * count
    return [source[s[0].pos : s[-1].pos + len(s[-1].text)] for s in segments]


def unparse(node: ast.Expr) -> str:
    """A condition written back as text (used when the source cannot be split)."""

    def const(c: ast.Const) -> str:
        if isinstance(c.value, bool):
            return "true" if c.value else "false"
        if isinstance(c.value, str):
            return '"' + c.value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return str(c.value)

    def operand(o: Any) -> str:
        if isinstance(o, ast.Path):
            return o.name
        if isinstance(o, ast.Element):
            return "x"
        if isinstance(o, ast.Shift):
            sign = "-" if o.amount < 0 else "+"
            plural = "" if abs(o.amount) == 1 else "s"
            return f"{operand(o.base)} {sign} {abs(o.amount)} {o.unit}{plural}"
        if isinstance(o, ast.DaysBetween):
            return f"days between {operand(o.first)} and {operand(o.second)}"
        return const(o)

    def values(vs: ast.ValueSet) -> str:
        if isinstance(vs, ast.ListRef):
            return f"list {vs.name}"
        return "[" + ", ".join(const(c) for c in vs.items) + "]"

    def words(vs: ast.ValueSet) -> str:
        if isinstance(vs, ast.ListLiteral) and len(vs.items) == 1:
            return const(vs.items[0])
        return "any of " + values(vs)

    def go(n: ast.Expr, top: bool = False) -> str:
        if isinstance(n, ast.And | ast.Or):
            kw = " and " if isinstance(n, ast.And) else " or "
            text = kw.join(go(o) for o in n.operands)
            return text if top else f"({text})"
        if isinstance(n, ast.Not):
            return f"not {go(n.operand)}"
        if isinstance(n, ast.Compare):
            return f"{operand(n.left)} {n.op} {operand(n.right)}"
        if isinstance(n, ast.Member):
            return f"{operand(n.subject)} {'not in' if n.negated else 'in'} {values(n.values)}"
        if isinstance(n, ast.StringTest):
            mode = {"contains": "contains", "starts": "starts with", "ends": "ends with"}[n.mode]
            return f"{operand(n.subject)} {mode} {words(n.words)}"
        if isinstance(n, ast.Hanzi):
            return f"{operand(n.subject)} is hanzi"
        if isinstance(n, ast.Presence):
            return f"{n.subject.name} is {'missing' if n.missing else 'present'}"
        if isinstance(n, ast.Emptiness):
            return f"{n.subject.name} is {'empty' if n.empty else 'not empty'}"
        if isinstance(n, ast.Truthy):
            return n.subject.name
        if isinstance(n, ast.Quantified):
            return f"{n.kind} {n.subject.name} {go(n.test).removeprefix('x ')}"
        raise AssertionError(f"unexpected node {n!r}")

    return go(node, top=True)


def _condition_dict(c: ConditionExplained) -> dict[str, Any]:
    return {
        "condition": c.source,
        "facts_read": [_fact_dict(p, v) for p, v in c.facts_read],
        "connective": c.connective,
        "parts": [
            {
                "source": p.source,
                "held": p.held,
                "facts_read": [_fact_dict(path, v) for path, v in p.facts_read],
            }
            for p in c.parts
        ],
        "reference_held": c.reference_held,
    }


def _fact_dict(path: str, value: Any) -> dict[str, Any]:
    if value is MISSING:
        return {"path": path, "missing": True}
    return {"path": path, "value": _jsonable(value)}


def _jsonable(v: Any) -> Any:
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, tuple | frozenset | set):
        return [_jsonable(x) for x in v]
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    return v
