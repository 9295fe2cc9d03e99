"""Compile an Item into engine rules: one durable_rules rule per policy rule, per material
condition and per output case, plus the probes the conditions need.

Engine rule names: "r:<rule id>", "m:<material id>", "o:<rule id>:<output>:<case index>"; a
condition too big for one engine ruleset is spread over "<name>#0", "<name>#1", ...
(rules/engine_shape.py), and what cannot be spread is refused here (MP340-MP342).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

from miaopi_server.errors import Diagnostic
from miaopi_server.lang import ast
from miaopi_server.lang.compiler import ALWAYS_KEY, FieldSpec, compile_condition, compile_value
from miaopi_server.lang.probes import MISSING, Probe, ProbeTable
from miaopi_server.rules.engine_shape import (
    MAX_ALTERNATIVES,
    MAX_PARTS,
    PART_BUDGET,
    TooManyAlternatives,
    partition,
    split_rule,
)
from miaopi_server.rules.model import (
    APPLICATION_DATE,
    COMPUTE,
    NO_DEFAULT,
    UNKNOWN_KIND,
    Condition,
    Expression,
    Item,
    LegalBasis,
    Material,
    Rule,
)
from miaopi_server.rules.remedies import Remedies, remedies_notice

MATERIALS_KEY = "_m"
PROBES_KEY = "_p"


# Engine rule names: the one place that spells them.
def rule_key(rule_id: str) -> str:
    return f"r:{rule_id}"


def material_key(material_id: str) -> str:
    return f"m:{material_id}"


def output_key(rule_id: str, output: str, index: int) -> str:
    return f"o:{rule_id}:{output}:{index}"


class OutputChoice(NamedTuple):
    """One case of an output table: chosen when `engine_rule` fired (None: the fallback).
    With a `term` the value is computed from the case (lang.probes.term_value)."""

    engine_rule: str | None
    value: Any
    term: tuple[Any, ...] | None = None


class OutputPlan(NamedTuple):
    name: str
    choices: tuple[OutputChoice, ...]  # in table order; the first that holds is chosen


class RulePlan(NamedTuple):
    """What assembling a decision needs of one policy rule, worked out once per item."""

    engine_rule: str
    rule: Rule
    basis: LegalBasis | None
    reads: tuple[str, ...]  # fact paths its condition reads, reported in its reason
    outputs: tuple[OutputPlan, ...]
    absent: tuple[Any, ...]  # MISSING once per read: what a path not in the case reads as


class MaterialPlan(NamedTuple):
    """A material the engine checks (required or deferrable; optional ones never are)."""

    engine_rule: str
    material: Material
    message: str  # the reason given when it is missing
    basis: LegalBasis | None
    reads: tuple[str, ...]  # fact paths its `when` reads
    absent: tuple[Any, ...]  # MISSING once per read
    reason_id: str  # "material:<id>", the rule id of its reason
    condition: str  # the source of its `when` ("" when always required)


@dataclass(frozen=True)
class CompiledItem:
    item: Item
    conditions: dict[str, dict[str, Any]]  # engine rule name (maybe "name#k") -> condition
    probes: tuple[tuple[str, Probe], ...]
    paths: tuple[str, ...]  # fact paths any condition reads (all the engine needs)
    never: frozenset[str]  # engine rules whose condition can never hold
    reads: dict[str, tuple[str, ...]]  # engine rule name -> fact paths its condition reads

    @cached_property
    def worked_out(self) -> dict[str, Any]:
        """What later layers work out once per item and keep with it (decision/decide.py:
        the assembly plan), by name."""
        return {}

    @cached_property
    def fact_builder(self) -> FactBuilder:
        """`engine_fact` for this item, generated and compiled once."""
        return fact_builder(self)

    @cached_property
    def remedies(self) -> Remedies:
        """The notice every refusal of this item carries (built once, not per decision)."""
        return remedies_notice(self.item.remedies)

    @cached_property
    def material_ids(self) -> tuple[str, ...]:
        """Materials some engine rule tests (the engine fact carries only what is read)."""
        return tuple(m.id for m in self.item.materials if m.need != "optional")

    @cached_property
    def material_plan(self) -> tuple[MaterialPlan, ...]:
        """One plan per material that has an engine rule, in file order."""
        item = self.item
        basis = item.legal_basis.get(item.materials_basis)
        return tuple(
            MaterialPlan(
                engine_rule=key,
                material=m,
                message=f"缺少必要材料：{m.name}" + (f"（{m.when.source}）" if m.when else ""),
                basis=basis,
                reads=self.reads.get(key, ()),
                absent=(MISSING,) * len(self.reads.get(key, ())),
                reason_id=f"material:{m.id}",
                condition=m.when.source if m.when else "",
            )
            for m in item.materials
            if (key := material_key(m.id)) in self.reads
        )

    @cached_property
    def rule_plan(self) -> tuple[RulePlan, ...]:
        """One plan per policy rule, in file order."""
        item = self.item
        return tuple(
            RulePlan(
                engine_rule=rule_key(r.id),
                rule=r,
                basis=item.legal_basis.get(r.basis),
                reads=self.reads[rule_key(r.id)],
                outputs=tuple(
                    OutputPlan(
                        name,
                        tuple(
                            OutputChoice(
                                None if c.when is None else output_key(r.id, name, i),
                                c.value,
                                None if c.compute is None else c.compute.term,
                            )
                            for i, c in enumerate(cases)
                        ),
                    )
                    for name, cases in r.outputs
                ),
                absent=(MISSING,) * len(self.reads[rule_key(r.id)]),
            )
            for r in item.rules
        )


def field_specs(item: Item) -> dict[str, FieldSpec]:
    specs: dict[str, FieldSpec] = {}
    for f in item.fields.values():
        source = item.fields.get(f.derive_from) if f.derived else None
        always = f.derive != COMPUTE and (
            f.required
            or f.default is not NO_DEFAULT
            or f.path == APPLICATION_DATE
            or bool(source and source.required)
        )
        compares = None if f.kind == UNKNOWN_KIND else item.type_of(f).compares
        specs[f.path] = FieldSpec(f.path, f.kind, always, f.enum_values, compares=compares)
    return specs


def compile_item(item: Item) -> tuple[CompiledItem, list[Diagnostic]]:
    """Compile every condition of `item`; type errors come back as diagnostics located at the
    rule (the loader already located syntax errors precisely)."""
    specs = field_specs(item)
    probes = ProbeTable()
    conditions: dict[str, dict[str, Any]] = {}
    paths: dict[str, None] = {}
    never: set[str] = set()
    reads: dict[str, tuple[str, ...]] = {}
    diagnostics: list[Diagnostic] = []
    where_of: dict[str, tuple[int, int]] = {}  # engine rule -> its condition's line, column

    def add(name: str, cond: Condition, where: str, guard: dict[str, Any] | None = None) -> None:
        compiled = compile_condition(cond.tree, specs, item.lists, probes)
        for e in compiled.errors:
            line, column = cond.locate(e.pos)
            diagnostics.append(
                Diagnostic(item.source, line, column, e.code, f"{where}：{e.message}")
            )
        if compiled.never:
            never.add(name)
        reads[name] = tuple(compiled.paths)
        for p in compiled.paths:
            paths.setdefault(p, None)
        body = compiled.condition
        spread(name, {"$and": [body, guard]} if guard else body, cond, where)

    def spread(name: str, body: dict[str, Any], cond: Condition, where: str) -> None:
        """Add the engine rule(s) of one condition, refusing what the engine cannot take."""
        line, column = cond.locate(0)
        try:
            rules = split_rule(name, body)
        except TooManyAlternatives:
            message = (
                f"{where}：条件展开后超过 {MAX_ALTERNATIVES} 种情形，规则引擎无法承载；"
                "请拆成几条规则，或把长串的 or 改写成 in [...] / in list 清单"
            )
            diagnostics.append(Diagnostic(item.source, line, column, "MP341", message))
            return
        if rules is None:
            message = (
                f"{where}：条件的一种情形就含过多检验（规则引擎每个规则集的上限为 "
                f"{PART_BUDGET}），请拆成几条规则，或把长串的 or 改写成 in [...] / in list 清单"
            )
            diagnostics.append(Diagnostic(item.source, line, column, "MP340", message))
            return
        conditions.update(rules)
        where_of.update(dict.fromkeys(rules, (line, column)))

    for rule in item.rules:
        add(rule_key(rule.id), rule.when, f"规则 {rule.id}")
        for out_name, cases in rule.outputs:
            for i, case in enumerate(cases):
                if case.when is not None:
                    add(
                        output_key(rule.id, out_name, i),
                        case.when,
                        f"规则 {rule.id} 的输出 {out_name}",
                    )
    for m in item.materials:
        if m.need == "optional":
            continue
        not_submitted = {f"{MATERIALS_KEY}.{m.id}": False}
        if m.when is None:
            conditions[material_key(m.id)] = not_submitted
            reads[material_key(m.id)] = ()
        else:
            add(material_key(m.id), m.when, f"材料 {m.id}", guard=not_submitted)
    diagnostics.extend(_form_condition_errors(item, specs))
    diagnostics.extend(_expression_errors(item, specs))
    for _, probe in probes.items():
        paths.setdefault(probe.path, None)
    parts = partition(conditions)
    if len(parts) > MAX_PARTS:
        line, column = where_of.get(parts[MAX_PARTS][0], (1, 1))
        message = (
            f"事项的规则总量超过规则引擎的上限（{MAX_PARTS} 个规则集，每个 {PART_BUDGET}），"
            "自此条件起无法加载；请精简条件或拆分事项"
        )
        diagnostics.append(Diagnostic(item.source, line, column, "MP342", message))
    return CompiledItem(
        item, conditions, tuple(probes.items()), tuple(paths), frozenset(never), reads
    ), diagnostics


def _form_condition_errors(item: Item, specs: dict[str, FieldSpec]) -> list[Diagnostic]:
    """Type errors in `required_when` / `absent_when`. They are evaluated in validation, on the
    form's facts, before derived facts exist: a derived fact there is an error (MP314)."""
    out: list[Diagnostic] = []
    for f in item.fields.values():
        for key, cond in (("required_when", f.required_when), ("absent_when", f.absent_when)):
            if cond is None:
                continue
            where = f"字段 {f.path} 的 {key}"
            for e in compile_condition(cond.tree, specs, item.lists, ProbeTable()).errors:
                line, column = cond.locate(e.pos)
                out.append(Diagnostic(item.source, line, column, e.code, f"{where}：{e.message}"))
            for p in ast.paths_of(cond.tree):
                if p in item.fields and item.fields[p].derived:
                    line, column = cond.locate(0)
                    message = f"{where}：只能读取表单字段，{p} 是派生字段（检查表单时尚未计算）"
                    out.append(Diagnostic(item.source, line, column, "MP314", message))
    return out


def _expression_errors(item: Item, specs: dict[str, FieldSpec]) -> list[Diagnostic]:
    """Type errors in computed values (`compute:` of derived facts and outputs). A computed
    derived fact may read form fields, derived facts made by a function, and computed ones
    defined before it (they are computed in file order): anything later is MP362."""
    out: list[Diagnostic] = []

    def check(expr: Expression, where: str) -> None:
        for e in compile_value(expr.tree, specs).errors:
            line, column = expr.locate(e.pos)
            out.append(Diagnostic(item.source, line, column, e.code, f"{where}：{e.message}"))

    computed = [f for f in item.derived_fields if f.compute is not None]
    for n, f in enumerate(computed):
        assert f.compute is not None
        where = f"派生字段 {f.path} 的 compute"
        check(f.compute, where)
        later = {g.path for g in computed[n:]}
        for p in f.compute.paths:
            if p in later:
                line, column = f.compute.locate(0)
                message = f"{where}：{p} 在此之后（或就是本字段）才计算，请把它写在前面"
                out.append(Diagnostic(item.source, line, column, "MP362", message))
    for rule in item.rules:
        for name, cases in rule.outputs:
            for case in cases:
                if case.compute is not None:
                    check(case.compute, f"规则 {rule.id} 的输出 {name}")
    return out


def engine_fact(
    compiled: CompiledItem, values: dict[str, Any], materials: frozenset[str]
) -> dict[str, Any]:
    """The fact asserted for one case: only what the conditions read, nested by path; the
    probes that have a value (`_p`); the materials some rule tests that were not submitted,
    as false (`_m`: a rule tests `_m.<id> == false`, which a material left out of `_m` does
    not meet either). An empty `_p` or `_m` is left out."""
    return compiled.fact_builder(values, materials)


FactBuilder = Callable[[dict[str, Any], frozenset[str]], dict[str, Any]]


def fact_builder(compiled: CompiledItem) -> FactBuilder:
    """`engine_fact` for one item as straight-line code, compiled once: each path read at
    its place, probes, materials. Paths, keys and material ids come from the rule file, so
    they are handed to the code as constants (`c0`, `c1`, ...), never written into it."""
    names: dict[str, Any] = {"MISSING": MISSING}
    lines = ["def build(values, materials):", "    get = values.get", "    fact = {c0: True}"]
    names["c0"] = ALWAYS_KEY

    def const(value: Any) -> str:
        name = f"c{len(names) - 1}"
        names[name] = value
        return name

    # The objects of the fact, each built before it is put in its parent (left out when empty).
    tree: dict[str, Any] = {}
    for path in compiled.paths:
        node = tree
        for p in path.split(".")[:-1]:
            node = node.setdefault(p, {})
        node.setdefault("", []).append(path)

    def build(node: dict[str, Any], var: str, depth: int) -> None:
        pad = "    " * depth
        for path in node.get("", []):
            lines.append(f"{pad}v = get({const(path)}, MISSING)")
            lines.append(f"{pad}if v is not MISSING:")
            lines.append(f"{pad}    {var}[{const(path.rsplit('.', 1)[-1])}] = v")
        for key, child in node.items():
            if key:
                sub = f"n{len(lines)}"
                lines.append(f"{pad}{sub} = {{}}")
                build(child, sub, depth)
                lines.append(f"{pad}if {sub}:")
                lines.append(f"{pad}    {var}[{const(key)}] = {sub}")

    build(tree, "fact", 1)
    if compiled.probes:
        lines.append("    read = lambda p: get(p, MISSING)")
        lines.append("    probes = {}")
        for key, probe in compiled.probes:
            lines.append(f"    v = {const(probe)}.compute(read)")
            lines.append("    if v is not None:")
            lines.append(f"        probes[{const(key)}] = v")
        lines.append("    if probes:")
        lines.append(f"        fact[{const(PROBES_KEY)}] = probes")
    if compiled.material_ids:
        lines.append("    absent = {}")
        for m in compiled.material_ids:
            k = const(m)
            lines.append(f"    if {k} not in materials:")
            lines.append(f"        absent[{k}] = False")
        lines.append("    if absent:")
        lines.append(f"        fact[{const(MATERIALS_KEY)}] = absent")
    lines.append("    return fact")
    source = "\n".join(lines) + "\n"
    code = compile(source, f"<engine fact of {compiled.item.code}@{compiled.item.version}>", "exec")
    exec(code, names)  # our own source text; every rule-file value is a constant
    built: FactBuilder = names["build"]
    built.__doc__ = source
    return built
