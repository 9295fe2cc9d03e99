"""MP360: an item that can refuse must name who hears a challenge to the refusal.

A REJECT carries the remedies notice (行政许可法 Art. 38, rules/remedies.py); without the bodies
it can only say "the competent review body / court". An item can refuse when a rule's outcome
is REJECT or a material is required (a missing one refuses the case). The server still loads
such a file (its refusals name no body); lint refuses it.
"""

from __future__ import annotations

import yaml

from miaopi_server.errors import Diagnostic
from miaopi_server.rules.compile import CompiledItem
from miaopi_server.rules.lint.yaml_nodes import entries, position
from miaopi_server.rules.loader import DEPARTMENTS_DIR


def can_refuse(compiled: CompiledItem) -> bool:
    item = compiled.item
    return any(r.outcome == "REJECT" for r in item.rules) or any(
        m.need == "required" for m in item.materials
    )


def missing_remedies(compiled: CompiledItem, tree: yaml.Node | None) -> list[Diagnostic]:
    item = compiled.item
    bodies = item.remedies
    if bodies.complete or not can_refuse(compiled):
        return []
    top = entries(tree)
    node = top["remedies"][1] if "remedies" in top else None
    if node is None:
        node = entries(top["item"][1]).get("department", (None, None))[1] if "item" in top else None
    line, column = position(node) if node is not None else (1, 1)
    lacking = "、".join(
        name
        for name, value in (
            ("review_body（行政复议机关）", bodies.review_body),
            ("court（人民法院）", bodies.court),
        )
        if not value
    )
    message = (
        f"事项可能作出不予决定，须告知申请复议、提起诉讼的机关，缺少 {lacking}："
        f"在规则文件中写 remedies: {{review_body: ..., court: ...}}，或在 {DEPARTMENTS_DIR}/ "
        f"中为部门 {item.department!r} 配置"
    )
    return [Diagnostic(item.source, line, column, "MP360", message)]
