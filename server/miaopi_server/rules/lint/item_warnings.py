"""Warnings (MP4xx) about parts of a rule file that can never matter. Lint asks for them only on
files without errors, so one mistake does not cascade:

    MP401 a rule (or a material's `when`) that can never match
    MP402 an item that can never be approved
    MP403 an optional field, or a derived fact, that nothing reads
    MP404 a legal basis nothing cites (the first entry, the item's 设定依据, is exempt)
    MP405 an item-local named list nothing uses
    MP406 an output case that can never be chosen
    MP407 a form field that can be both required (`required_when`) and forbidden (`absent_when`)
          in one case; MP401 also covers a `required_when` / `absent_when` that never holds
"""

from __future__ import annotations

from typing import Any

import yaml

from miaopi_server.errors import Diagnostic
from miaopi_server.lang import ast
from miaopi_server.rules.compile import CompiledItem, material_key, rule_key
from miaopi_server.rules.lint.contradictions import TRUE, ItemLogic
from miaopi_server.rules.lint.yaml_nodes import entries, position
from miaopi_server.rules.loader import conditions_of
from miaopi_server.rules.model import APPLICATION_DATE, Condition

WARNING = "warning"  # a Diagnostic's severity


def item_warnings(compiled: CompiledItem, tree: yaml.Node) -> list[Diagnostic]:
    """Every MP4xx warning for one compiled item whose rule file's node tree is `tree`."""
    return _Warnings(compiled, tree).run()


class _Warnings:
    """One item's checks; each appends its warnings to `out`."""

    def __init__(self, compiled: CompiledItem, tree: yaml.Node):
        self.c = compiled
        self.item = compiled.item
        self.top = entries(tree)
        self.logic = ItemLogic(self.item)
        self.out: list[Diagnostic] = []
        self.formulas: dict[int, Any] = {}

    def run(self) -> list[Diagnostic]:
        never = self.never_rules()
        self.no_approve(never)
        self.unread_fields()
        self.uncited_bases()
        self.unused_lists()
        self.unreachable_outputs(never)
        self.conditional_fields()
        return self.out

    # -- helpers
    def warn(self, where: yaml.Node | tuple[int, int] | None, code: str, message: str) -> None:
        line, column = (
            (1, 1) if where is None else where if isinstance(where, tuple) else position(where)
        )
        self.out.append(Diagnostic(self.item.source, line, column, code, message, WARNING))

    def f(self, cond: Condition | None) -> Any:
        """The formula of a condition (None: no `when`, always holds), built once per condition."""
        if cond is None:
            return TRUE
        if id(cond) not in self.formulas:
            self.formulas[id(cond)] = self.logic.formula(cond.tree)
        return self.formulas[id(cond)]

    def key(self, section: str, name: str) -> yaml.Node | None:
        return entries(self.top.get(section, (None, None))[1]).get(name, (None, None))[0]

    def rule_node(self, rule_id: str) -> yaml.Node | None:
        rules = self.top.get("rules", (None, None))[1]
        entry: yaml.Node
        for entry in rules.value if isinstance(rules, yaml.SequenceNode) else []:
            rid = entries(entry).get("id")
            if rid and rid[1].value == rule_id:
                return entry
        return None

    # -- MP401
    def never_rules(self) -> set[str]:
        never: set[str] = set()
        for rule in self.item.rules:
            sure, why = self.logic.never_because(self.f(rule.when))
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
            sure, why = self.logic.never_because(self.f(m.when))
            if sure or material_key(m.id) in self.c.never:
                detail = f"（{why}）" if why else ""
                self.warn(
                    m.when.locate(0),
                    "MP401",
                    f"材料 {m.id} 的 when 永远不成立{detail}，这份材料永远不会被要求",
                )
        return never

    # -- MP401 / MP407 on required_when / absent_when
    def conditional_fields(self) -> None:
        for fld in self.item.fields.values():
            for key, cond in (
                ("required_when", fld.required_when),
                ("absent_when", fld.absent_when),
            ):
                if cond is None:
                    continue
                sure, why = self.logic.never_because(self.f(cond))
                if sure:
                    detail = f"（{why}）" if why else ""
                    self.warn(
                        cond.locate(0),
                        "MP401",
                        f"字段 {fld.path} 的 {key} 永远不成立{detail}，这一条不会起作用",
                    )
            if fld.required_when is None or fld.absent_when is None:
                continue
            both = ("and", (self.f(fld.required_when), self.f(fld.absent_when)))
            if self.logic.never(both) is False:
                self.warn(
                    fld.absent_when.locate(0),
                    "MP407",
                    f"字段 {fld.path} 的 required_when 与 absent_when 可能同时成立："
                    "同一个案件既必须填写又不应填写，永远无法通过检查",
                )

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
        for _, expr in self.item.computed:  # computed facts and outputs read what they use
            reads.update(expr.paths)
        for rule in self.item.rules:
            for _, cases in rule.outputs:
                reads.update(p for c in cases if c.compute for p in c.compute.paths)
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
            elif not fld.required and not self._needed_from_a_source(fld.path):
                self.warn(
                    self.key("form", fld.path),
                    "MP403",
                    f"选填字段 {fld.path}{label}没有被任何条件或派生字段读取，填与不填都不影响决定",
                )

    def _needed_from_a_source(self, path: str) -> bool:
        """A source-backed field without a default is required all the same (from the window
        or the source), so it is not optional for MP403."""
        fld = self.item.fields[path]
        return path in self.item.source_backed and not fld.has_default

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
        local = entries(self.top.get("lists", (None, None))[1])
        used: set[str] = set()
        for cond in conditions_of(self.item):
            used.update(ast.list_refs(cond.tree))
        for _, value in local.values():
            union = entries(value).get("union")
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
            outputs = entries(entries(self.rule_node(rule.id)).get("outputs", (None, None))[1])
            for name, cases in rule.outputs:
                node = outputs.get(name, (None, None))[1]
                case_nodes = node.value if isinstance(node, yaml.SequenceNode) else []
                for i in range(len(cases)):
                    where = case_nodes[i] if i < len(case_nodes) else node
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
