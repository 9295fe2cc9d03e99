"""Exercise one registered item on generated cases and compare the engine with the reference
semantics: the check the rule-set gate (ops/gate.py) runs in a throw-away process.

For every valid case, the engine rules that fired must be exactly those whose conditions
`lang/reference.py` says hold on the same validated facts (a policy rule, an output case, a
material that is required here and was not submitted), and the decision must assemble. A
disagreement, an engine error or any other failure is a located diagnostic; cases the form
refuses are only counted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from miaopi_server.decision.decide import assemble
from miaopi_server.decision.engine import Engine, RulesetHandle
from miaopi_server.decision.validate import Case, validate_case
from miaopi_server.errors import CaseInvalid, Diagnostic, EngineError
from miaopi_server.lang.probes import MISSING
from miaopi_server.lang.reference import evaluate
from miaopi_server.rules.compile import (
    CompiledItem,
    engine_fact,
    material_key,
    output_key,
    rule_key,
)
from miaopi_server.rules.fieldtypes import parse_date
from miaopi_server.rules.model import Condition
from miaopi_server.rules.samples import Sample

MISMATCH = "MP192"  # the engine and the reference semantics disagree
FAILED = "MP193"  # the engine refused the set or failed on a case (INTERNAL if served)
MAX_SHOWN = 600  # characters of a generated case quoted in a diagnostic


@dataclass
class Exercised:
    decided: int = 0
    invalid: int = 0  # generated cases the form refused (counted, not a failure)
    problems: list[Diagnostic] = field(default_factory=list)


def _conditions(compiled: CompiledItem) -> dict[str, tuple[Condition | None, str | None]]:
    """Engine rule name -> (its condition, the material it checks), as compile.py built them."""
    item = compiled.item
    out: dict[str, tuple[Condition | None, str | None]] = {}
    for rule in item.rules:
        out[rule_key(rule.id)] = (rule.when, None)
        for name, cases in rule.outputs:
            for i, c in enumerate(cases):
                if c.when is not None:
                    out[output_key(rule.id, name, i)] = (c.when, None)
    for m in item.materials:
        if m.need != "optional":
            out[material_key(m.id)] = (m.when, m.id)
    return out


def expected_firings(compiled: CompiledItem, case: Case) -> set[str]:
    """The engine rules that must fire for `case` by the reference semantics."""
    values = case.values

    def get(path: str) -> Any:
        return values.get(path, MISSING)

    lists = compiled.item.lists
    expected: set[str] = set()
    for name, (cond, material) in _conditions(compiled).items():
        if material is not None and material in case.materials:
            continue
        if cond is None or evaluate(cond.tree, get, lists):
            expected.add(name)
    return expected


def _shown(facts: Any, materials: Any) -> str:
    text = json.dumps({"facts": facts, "materials": materials}, ensure_ascii=False)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"


def exercise(
    compiled: CompiledItem, handle: RulesetHandle, engine: Engine, samples: list[Sample]
) -> Exercised:
    """Decide every sample; at most one diagnostic per engine rule (the first case found)."""
    item = compiled.item
    label = f"事项 {item.code}@{item.version}"
    result = Exercised()
    blamed: set[str] = set()
    for facts, materials in samples:
        date = facts.get("application", {}).get("date") if isinstance(facts, dict) else None
        as_of = parse_date(date) if isinstance(date, str) else None
        if as_of is None:
            result.invalid += 1
            continue
        try:
            case = validate_case(item, facts, materials, as_of)
        except CaseInvalid:
            result.invalid += 1
            continue
        try:
            fired = set(engine.evaluate(handle, engine_fact(compiled, case.values, case.materials)))
            assemble(compiled, case, fired)
        except Exception as exc:  # an engine error, or a defect of ours: either is INTERNAL
            kind = "规则引擎出错" if isinstance(exc, EngineError) else f"{type(exc).__name__}"
            message = f"{label}：判定生成的用例时{kind}：{exc}（用例 {_shown(facts, materials)}）"
            result.problems.append(Diagnostic(item.source, 1, 1, FAILED, message))
            return result  # the engine's state for this item can no longer be trusted
        result.decided += 1
        found = disagreements(compiled, fired, expected_firings(compiled, case), facts, materials)
        for name in sorted(found.keys() - blamed):
            blamed.add(name)
            result.problems.append(found[name])
    return result


def disagreements(
    compiled: CompiledItem, fired: set[str], expected: set[str], facts: Any, materials: Any
) -> dict[str, Diagnostic]:
    """Engine rule name -> MP192 diagnostic, for every rule on which the engine (`fired`) and
    the reference semantics (`expected`) disagree on the case (`facts`, `materials`, quoted in
    the message); located at the rule's condition when it has one."""
    if fired == expected:
        return {}
    item = compiled.item
    conditions = _conditions(compiled)
    out: dict[str, Diagnostic] = {}
    for name in sorted(fired ^ expected):
        cond = conditions.get(name, (None, None))[0]
        line, column = cond.locate(0) if cond is not None else (1, 1)
        should = "应触发而未触发" if name in expected else "不应触发却触发了"
        message = (
            f"事项 {item.code}@{item.version}：规则引擎与参考语义不一致：引擎规则 {name} {should}"
            f"（用例 {_shown(facts, materials)}）"
        )
        out[name] = Diagnostic(item.source, line, column, MISMATCH, message)
    return out
