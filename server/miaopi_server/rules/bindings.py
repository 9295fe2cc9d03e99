"""An item's data sources (四免) as its rule file declares them, and their reader.

    sources:
      population:                        # a source of sources/catalogue.py
        key: applicant.id_number          # the form fact it is looked up by
        facts:                            # form fact: field of the source
          applicant.hukou_region: hukou_region
        on_conflict: manual_review        # or source_wins
        on_missing_record: use_window     # or manual_review, invalid_argument
        on_unavailable: manual_review     # or unavailable
        deadline_ms: 800
    e_license_holder: applicant.id_number # whose licences `e_license_type` materials consult

Checked here, so the server and lint alike refuse a bad binding: MP350 an unknown source or
source field, MP351 a key or fact that is not a form field of the matching type, MP352 a
source-backed fact that is also `required` from the window, MP353 an e-license setting that
cannot be used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import yaml

from miaopi_server.sources.catalogue import CATALOGUE, LICENCE_TYPES

ON_CONFLICT = ("source_wins", "manual_review")
ON_MISSING = ("use_window", "manual_review", "invalid_argument")
ON_UNAVAILABLE = ("manual_review", "unavailable")
DEFAULT_DEADLINE_MS = 1000
# A form field of this kind can hold a source field of the kind on the right.
_HOLDS = {
    "boolean": {"boolean"},
    "integer": {"integer"},
    "string": {"string"},
    "enum": {"string"},
    "date": {"date"},
    "region_code": {"region_code"},
}


@dataclass(frozen=True)
class SourceBinding:
    source: str
    key: str  # form fact path
    facts: tuple[tuple[str, str], ...]  # (form fact path, source field)
    on_conflict: str = "manual_review"
    on_missing_record: str = "use_window"
    on_unavailable: str = "manual_review"
    deadline_ms: int = DEFAULT_DEADLINE_MS

    @property
    def label(self) -> str:
        return CATALOGUE[self.source].label


class NodeReader(Protocol):
    """What the rule loader offers a reader of one part of the file."""

    def diag(self, node: yaml.Node | None, code: str, message: str) -> None: ...

    def mapping(
        self,
        node: yaml.Node | None,
        what: str,
        allowed: set[str] | None = None,
        required: tuple[str, ...] = (),
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]: ...

    def text_of(self, node: yaml.Node, what: str, allow_empty: bool = False) -> str: ...

    def int_of(self, node: yaml.Node, what: str, minimum: int = 0) -> int: ...


def read_sources(
    r: NodeReader, node: yaml.Node, fields: dict[str, Any]
) -> tuple[SourceBinding, ...]:
    """The bindings of `sources:`; `fields` are the form's Field objects by path."""
    out: list[SourceBinding] = []
    bound: set[str] = set()
    for name, (key_node, body) in r.mapping(node, "sources").items():
        spec = CATALOGUE.get(name)
        if spec is None:
            r.diag(
                key_node, "MP350", f"数据目录中没有数据源 {name!r}（可用：{'、'.join(CATALOGUE)}）"
            )
            continue
        m = r.mapping(
            body,
            f"sources.{name}",
            {"key", "facts", "on_conflict", "on_missing_record", "on_unavailable", "deadline_ms"},
            ("key", "facts"),
        )
        if "key" not in m or "facts" not in m:
            continue
        key = r.text_of(m["key"][1], "key")
        key_field = fields.get(key)
        if key_field is None or key_field.kind != spec.key_kind:
            r.diag(
                m["key"][1], "MP351", f"{name} 按 {spec.key_kind} 类型的表单字段查询，{key!r} 不是"
            )
        facts: list[tuple[str, str]] = []
        for path, (path_node, field_node) in r.mapping(
            m["facts"][1], f"sources.{name}.facts"
        ).items():
            source_field = spec.fields.get(r.text_of(field_node, path))
            form_field = fields.get(path)
            if source_field is None:
                known = "、".join(spec.fields)
                r.diag(
                    field_node,
                    "MP350",
                    f"数据源 {name} 没有字段 {field_node.value!r}（可用：{known}）",
                )
            elif form_field is None:
                r.diag(path_node, "MP351", f"{path} 不是表单字段")
            elif source_field.kind not in _HOLDS.get(form_field.kind, ()):
                r.diag(
                    path_node,
                    "MP351",
                    f"{path}（{form_field.kind}）不能取"
                    f" {name}.{source_field.name}（{source_field.kind}）的值",
                )
            elif path in bound:
                r.diag(path_node, "MP351", f"{path} 已由另一个数据源提供")
            elif form_field.required:
                r.diag(
                    path_node,
                    "MP352",
                    f"{path} 由数据源 {name} 提供，不应再要求窗口必填"
                    "（去掉 required；窗口与数据源都没有时仍报缺失）",
                )
            else:
                bound.add(path)
                facts.append((path, source_field.name))
        choices = {}
        for setting, allowed, default in (
            ("on_conflict", ON_CONFLICT, "manual_review"),
            ("on_missing_record", ON_MISSING, "use_window"),
            ("on_unavailable", ON_UNAVAILABLE, "manual_review"),
        ):
            value = r.text_of(m[setting][1], setting) if setting in m else default
            if value not in allowed:
                r.diag(m[setting][1], "MP105", f"{setting} 应为 {'、'.join(allowed)} 之一")
                value = default
            choices[setting] = value
        deadline = (
            r.int_of(m["deadline_ms"][1], "deadline_ms", 1)
            if "deadline_ms" in m
            else DEFAULT_DEADLINE_MS
        )
        out.append(SourceBinding(name, key, tuple(facts), deadline_ms=deadline, **choices))
    return tuple(out)


def check_e_licenses(
    r: NodeReader, node: yaml.Node | None, holder: str, fields: dict[str, Any], materials: Any
) -> None:
    """MP353: a holder that is not an identity field, a licence type the library does not issue,
    or `e_license_type` on a material without `e_license: true` or without a holder."""
    if holder:
        f = fields.get(holder)
        if f is None or f.kind not in ("resident_id", "credit_code"):
            r.diag(node, "MP353", f"e_license_holder {holder!r} 应为身份证号或统一社会信用代码字段")
    for m in materials:
        if not m.e_license_type:
            continue
        if m.e_license_type not in LICENCE_TYPES:
            r.diag(
                node,
                "MP353",
                f"材料 {m.id} 的证照类型 {m.e_license_type!r} 未知"
                f"（可用：{'、'.join(LICENCE_TYPES)}）",
            )
        elif not m.e_license:
            r.diag(node, "MP353", f"材料 {m.id} 有 e_license_type 却未标 e_license: true")
        elif not holder:
            r.diag(node, "MP353", f"材料 {m.id} 可用电子证照，须以 e_license_holder 指明持证人字段")
