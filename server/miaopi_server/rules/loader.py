"""Load rule files (YAML) into the domain model, collecting every problem with its location.

A rules directory holds one YAML file per item (any depth) and shared named lists under
`lists/`. Nothing in a rule file is ever executed: conditions are parsed by `lang.parser`
and compiled to durable_rules conditions later.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from miaopi_server.errors import Diagnostic
from miaopi_server.lang import ast
from miaopi_server.lang.compiler import MAX_LIST_VALUES
from miaopi_server.lang.parser import MAX_NUMBER, ExprSyntaxError, parse, parse_value
from miaopi_server.rules.bindings import check_e_licenses, read_sources
from miaopi_server.rules.fieldtypes import (
    FIELD_TYPES,
    MAX_TIME_LIMIT_DAYS,
    OPTIONS,
    FieldTypes,
    parse_date,
)
from miaopi_server.rules.model import (
    APPLICATION_DATE,
    COMPUTE,
    DEFAULT_SUPPLEMENT_DAYS,
    ITEM_TYPES,
    MATERIAL_NEEDS,
    OUTCOMES,
    UNKNOWN_KIND,
    Condition,
    Expression,
    Field,
    Item,
    LegalBasis,
    Material,
    OutputCase,
    RemedyBodies,
    Rule,
)

LISTS_DIR = "lists"
# Defaults per department (who hears a challenge to a refusal), shared by the directory's items.
DEPARTMENTS_DIR = "departments"
# Limits on what a rule file may hold (docs/RULES.md). A file or list past them is refused
# with a located error by the loader, and so by lint and the server alike.
MAX_FILE_BYTES = 4 * 1024 * 1024
# Subjects (first segment of a field path) the engine or our fact layout uses: `sid` and `id`
# are the engine's session and fact ids, `_always`, `_m` (materials), `_p` (probes) and
# `_warmup` are ours; every name starting with `_` is kept for such use.
RESERVED_SUBJECTS = frozenset({"sid", "id"})
# libyaml's loader when PyYAML was built with it (3x faster, same marks), else pure Python.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_IDENT = re.compile(r"^[^\W\d]\w*$")
_PATH = re.compile(r"^[^\W\d]\w*(\.[^\W\d]\w*)+$")
_BOOL_TAG = "tag:yaml.org,2002:bool"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_NULL_TAG = "tag:yaml.org,2002:null"
DERIVE_FUNCTIONS = {
    # name: (source kind, result kind)
    "age": ("resident_id", "integer"),
    "birth_date": ("resident_id", "date"),
    "credit_code_checksum_ok": ("credit_code", "boolean"),
    "credit_code_kind": ("credit_code", "string"),
}
_FIELD_KEYS = {
    "type",
    "label",
    "required",
    "default",
    "min",
    "max",
    "exclusive_min",
    "min_length",
    "max_length",
    "min_items",
    "values",
    "description",
    "required_when",
    "absent_when",
}


class _Invalid(Exception):
    """Raised after a diagnostic was recorded, to abandon one element."""


class _Empty:
    """An empty YAML document."""


def yaml_refusal(raw: bytes, text: str) -> tuple[int, int, str, str] | None:
    """(line, column, code, message) when a rule or list file must not be composed: larger than
    MAX_FILE_BYTES, or using anchors / aliases (a few lines of aliases expand to billions of
    nodes in any tool that walks the document: lint, editors, the JSON Schema check). Raises
    yaml.YAMLError for a file that does not parse."""
    if len(raw) > MAX_FILE_BYTES:
        size = f"{len(raw) / 1024 / 1024:.1f} MiB"
        return 1, 1, "MP110", f"文件过大（{size}，上限 {MAX_FILE_BYTES // 1024 // 1024} MiB）"
    if "&" not in text and "*" not in text:
        return None  # no anchor or alias can be written without one of them
    for event in yaml.parse(text, Loader=YAML_LOADER):
        anchor = getattr(event, "anchor", None)
        if isinstance(event, yaml.AliasEvent) or anchor is not None:
            mark = event.start_mark
            return (
                mark.line + 1 if mark else 1,
                mark.column + 1 if mark else 1,
                "MP110",
                "规则文件不支持 YAML 锚点和别名（& 与 *），请直接写出内容",
            )
    return None


@dataclass(frozen=True)
class ScalarSpan:
    """Where a scalar's value sits in its rule file: maps a character of the value to (line,
    column). Keeps only the scalar's own text, not the file or its YAML tree, which every
    loaded condition would otherwise hold on to (and which could not be pickled)."""

    raw: str  # the scalar as written, quotes and block indicators included
    value: str
    style: str | None
    line: int  # 0-based, of the scalar's first character
    column: int

    @classmethod
    def of(cls, text: str, node: yaml.Node) -> ScalarSpan:
        start, end = node.start_mark, node.end_mark
        style = node.style if isinstance(node, yaml.ScalarNode) else None
        return cls(text[start.index : end.index], node.value, style, start.line, start.column)

    def __call__(self, pos: int) -> tuple[int, int]:
        dl, dc = self.offset(pos)
        return self.line + 1 + dl, self.column + 1 + dc

    def offset(self, pos: int) -> tuple[int, int]:
        """(line, column) offset of character `pos` of the value from the scalar's start.

        Walks the scalar's source text alongside its value, so folded (>), literal (|),
        quoted and plain multi-line scalars all map back to the right spot."""
        text, value = self.raw, self.value
        j, end = 0, len(text)
        if self.style in ("|", ">"):
            j = text.find("\n", j, end) + 1 or j  # content starts after the indicator line
        elif self.style in ('"', "'"):
            j += 1
        for i, ch in enumerate(value[:pos]):
            if ch.isspace():
                while j < end and text[j].isspace() and text[j] != value[i + 1 : i + 2]:
                    j += 1
                continue
            found = text.find(ch, j, end)
            j = found + 1 if found >= 0 else j
        while j < end and text[j].isspace():  # land on the character itself
            j += 1
        dl = text.count("\n", 0, j)
        if dl == 0:
            return 0, j
        return dl, j - (text.rfind("\n", 0, j) + 1) - self.column


class _FileLoader:
    def __init__(
        self,
        path: Path,
        display: str,
        shared_lists: dict[str, tuple[str, ...]],
        field_types: FieldTypes,
        departments: Mapping[str, RemedyBodies] | None = None,
    ):
        self.path = path
        self.departments = departments or {}
        self.display = display
        self.shared_lists = shared_lists
        self.field_types = field_types
        self.diagnostics: list[Diagnostic] = []
        self.derived_so_far: dict[str, Field] = {}
        self.raw = b""
        self.text = ""

    # -- diagnostics
    def diag(
        self,
        node: yaml.Node | None,
        code: str,
        message: str,
        severity: str = "error",
        offset: tuple[int, int] = (0, 0),
    ) -> None:
        line, col = (node.start_mark.line + 1, node.start_mark.column + 1) if node else (1, 1)
        self.diagnostics.append(
            Diagnostic(self.display, line + offset[0], col + offset[1], code, message, severity)
        )

    def invalid(self, node: yaml.Node | None, code: str, message: str) -> _Invalid:
        self.diag(node, code, message)
        return _Invalid()

    # -- node readers
    def mapping(
        self,
        node: yaml.Node | None,
        what: str,
        allowed: set[str] | None = None,
        required: tuple[str, ...] = (),
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.invalid(node, "MP101", f"{what} 应为键值映射")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.diag(key_node, "MP101", f"{what} 的键应为文字")
                continue
            key = key_node.value
            if key in out:
                self.diag(key_node, "MP104", f"{what} 中重复的键 {key!r}")
                continue
            if allowed is not None and key not in allowed:
                known = "、".join(sorted(allowed))
                self.diag(key_node, "MP102", f"{what} 中未知的键 {key!r}（可用：{known}）")
                continue
            out[key] = (key_node, value_node)
        for key in required:
            if key not in out:
                self.diag(node, "MP103", f"{what} 缺少必填项 {key!r}")
        return out

    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.invalid(node, "MP101", f"{what} 应为列表")
        return list(node.value)

    def text_of(self, node: yaml.Node, what: str, allow_empty: bool = False) -> str:
        if not isinstance(node, yaml.ScalarNode) or (node.tag == _NULL_TAG and not node.style):
            raise self.invalid(node, "MP101", f"{what} 应为文字")
        if not allow_empty and not node.value.strip():
            raise self.invalid(node, "MP105", f"{what} 不能为空")
        return str(node.value)

    def int_of(self, node: yaml.Node, what: str, minimum: int = 0) -> int:
        if not isinstance(node, yaml.ScalarNode) or node.tag != _INT_TAG or node.style:
            raise self.invalid(node, "MP101", f"{what} 应为整数")
        # As YAML reads it (0x14, 0b101, 1:30, 017 = 15), as the schema check and every
        # editor do; int(node.value) raised ValueError (MP199) on the first three.
        value = int(self.constructed(node, what))
        if value < minimum:
            raise self.invalid(node, "MP105", f"{what} 不能小于 {minimum}")
        return value

    def number_of(self, node: yaml.Node, what: str) -> float | int:
        if (
            not isinstance(node, yaml.ScalarNode)
            or node.tag not in (_INT_TAG, _FLOAT_TAG)
            or node.style
        ):
            raise self.invalid(node, "MP101", f"{what} 应为数字")
        value = self.constructed(node, what)  # as YAML reads it, like int_of
        if not math.isfinite(value):  # .inf, .nan: float() raised ValueError (MP199) on them
            raise self.invalid(node, "MP105", f"{what} 不能是无穷大或 NaN")
        return float(value) if node.tag == _FLOAT_TAG else int(value)

    def bool_of(self, node: yaml.Node, what: str) -> bool:
        if not isinstance(node, yaml.ScalarNode) or node.tag != _BOOL_TAG or node.style:
            raise self.invalid(node, "MP101", f"{what} 应为 true 或 false")
        return node.value.lower() in ("true", "yes", "on")

    def date_of(self, node: yaml.Node, what: str) -> dt.date:
        day = parse_date(self.text_of(node, what))
        if day is None:
            raise self.invalid(node, "MP105", f"{what} 应为日期 YYYY-MM-DD")
        return day

    def expression(self, node: yaml.Node, what: str) -> Expression:
        source = self.text_of(node, what)
        span = ScalarSpan.of(self.text, node)
        try:
            return Expression(source, parse_value(source), span)
        except ExprSyntaxError as exc:
            self.diag(node, exc.code, f"{what}: {exc.message}", offset=span.offset(exc.pos))
            raise _Invalid() from None

    def condition(self, node: yaml.Node, what: str) -> Condition:
        source = self.text_of(node, what)
        span = ScalarSpan.of(self.text, node)
        try:
            return Condition(source, parse(source), span)
        except ExprSyntaxError as exc:
            self.diag(node, exc.code, f"{what}: {exc.message}", offset=span.offset(exc.pos))
            raise _Invalid() from None

    # -- the file
    def compose(self) -> yaml.Node | _Empty | None:
        """The file's YAML node tree (_Empty for an empty file); None after reporting why it
        cannot be read (MP100, MP110)."""
        try:
            self.raw = self.path.read_bytes()
            self.text = self.raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.diagnostics.append(
                Diagnostic(self.display, 1, 1, "MP100", f"文件不是 UTF-8 编码：{exc.reason}")
            )
            return None
        try:
            refusal = yaml_refusal(self.raw, self.text)
            if refusal is not None:
                self.diagnostics.append(Diagnostic(self.display, *refusal))
                return None
            root = yaml.compose(self.text, Loader=YAML_LOADER)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            problem = getattr(exc, "problem", None) or str(exc)
            self.diagnostics.append(
                Diagnostic(self.display, line, col, "MP100", f"YAML 语法错误：{problem}")
            )
            return None
        return _Empty() if root is None else root

    def load(self) -> Item | None:
        root = self.compose()
        if root is None:
            return None
        if isinstance(root, _Empty):
            self.diagnostics.append(Diagnostic(self.display, 1, 1, "MP103", "规则文件为空"))
            return None
        try:
            return self.item(root, self.raw)
        except _Invalid:
            return None

    def item(self, root: yaml.Node, raw: bytes) -> Item | None:
        top = self.mapping(
            root,
            "规则文件",
            {
                "schema",
                "item",
                "version",
                "effective_from",
                "effective_until",
                "legal_basis",
                "form",
                "derived",
                "lists",
                "materials",
                "materials_basis",
                "rules",
                "sources",
                "e_license_holder",
                "remedies",
            },
            ("item", "version", "legal_basis", "form", "rules"),
        )
        if "item" not in top or "version" not in top:
            raise _Invalid()
        if "schema" in top and self.text_of(top["schema"][1], "schema") != "miaopi/rulefile/v1":
            self.diag(top["schema"][1], "MP105", "schema 应为 miaopi/rulefile/v1")
        head = self.mapping(
            top["item"][1],
            "item",
            {"code", "name", "type", "department", "time_limit"},
            ("code", "name", "type", "department", "time_limit"),
        )
        code = self.guard(lambda: self.text_of(head["code"][1], "item.code"), "")
        if code and not re.fullmatch(r"[0-9A-Za-z_-]{1,64}", code):
            self.diag(head["code"][1], "MP105", "item.code 只能由字母、数字、- 和 _ 组成")
        name = self.guard(lambda: self.text_of(head["name"][1], "item.name"), "")
        type_name = self.guard(lambda: self.text_of(head["type"][1], "item.type"), "")
        if "type" in head and type_name and type_name not in ITEM_TYPES:
            self.diag(
                head["type"][1],
                "MP105",
                f"未知的事项类型 {type_name!r}（可用：{'、'.join(ITEM_TYPES)}）",
            )
        department = self.guard(lambda: self.text_of(head["department"][1], "item.department"), "")
        statutory, promised, on_the_spot = self.guard(lambda: self.time_limit(head), (0, 0, False))
        supplement = self.guard(lambda: self.supplement_days(head), DEFAULT_SUPPLEMENT_DAYS)
        version = self.guard(lambda: self.text_of(top["version"][1], "version"), "")
        effective_until = None
        if "effective_until" in top:
            effective_until = self.guard(
                lambda: self.date_of(top["effective_until"][1], "effective_until"), None
            )
        effective_from = None
        if "effective_from" in top:
            effective_from = self.guard(
                lambda: self.date_of(top["effective_from"][1], "effective_from"), None
            )
        if effective_from and effective_until and effective_until < effective_from:
            self.diag(top["effective_until"][1], "MP105", "effective_until 早于 effective_from")
        legal = (
            self.guard(lambda: self.legal_basis(top["legal_basis"][1]), {})
            if "legal_basis" in top
            else {}
        )
        fields = self.guard(lambda: self.form(top["form"][1]), {}) if "form" in top else {}
        if "derived" in top:
            self.guard(lambda: self.derived(top["derived"][1], fields), None)
        local_lists = (
            self.guard(lambda: self.local_lists(top["lists"][1]), {}) if "lists" in top else {}
        )
        materials = (
            self.guard(lambda: self.materials(top["materials"][1]), ())
            if "materials" in top
            else ()
        )
        materials_basis = ""
        if "materials_basis" in top:
            node = top["materials_basis"][1]
            materials_basis = self.guard(lambda: self.text_of(node, "materials_basis"), "")
            if materials_basis and materials_basis not in legal:
                self.diag(node, "MP320", f"materials_basis 引用了未定义的依据 {materials_basis!r}")
        elif any(m.need == "required" for m in materials):
            self.diag(
                top["materials"][1] if "materials" in top else root,
                "MP103",
                "有必要材料时须以 materials_basis 指明一次性告知的依据",
            )
        rules = self.guard(lambda: self.rules(top["rules"][1], legal), ()) if "rules" in top else ()
        sources = (
            self.guard(lambda: read_sources(self, top["sources"][1], fields), ())
            if "sources" in top
            else ()
        )
        holder_node = top["e_license_holder"][1] if "e_license_holder" in top else None
        holder = (
            self.guard(lambda: self.text_of(holder_node, "e_license_holder"), "")
            if holder_node
            else ""
        )
        check_e_licenses(self, holder_node or root, holder, fields, materials)
        own = (
            self.guard(lambda: self.remedies(top["remedies"][1], "remedies"), RemedyBodies())
            if "remedies" in top
            else RemedyBodies()
        )
        department_default = self.departments.get(department, RemedyBodies())
        remedies = own.over(department_default)
        lists = {**self.shared_lists, **local_lists}
        used = sorted(
            {
                name
                for c in _conditions(rules, materials, fields)
                for name in ast.list_refs(c.tree)
                if name in lists
            }
        )
        content = (
            raw
            + b"\0"
            + json.dumps({n: lists[n] for n in used}, ensure_ascii=False, sort_keys=True).encode()
        )
        if remedies != own:  # the department's default is part of what the item says
            taken = {"review_body": remedies.review_body, "court": remedies.court}
            content += b"\0" + json.dumps(taken, ensure_ascii=False, sort_keys=True).encode()
        digest = hashlib.sha256(content).hexdigest()
        return Item(
            code=code,
            name=name,
            type_name=type_name,
            department=department,
            statutory_days=statutory,
            promised_days=promised,
            supplement_days=supplement,
            on_the_spot=on_the_spot,
            version=version,
            effective_from=effective_from,
            effective_until=effective_until,
            legal_basis=legal,
            fields=fields,
            materials=materials,
            materials_basis=materials_basis,
            rules=rules,
            field_types=self.field_types,
            lists=lists,
            source=self.display,
            digest=f"sha256:{digest}",
            sources=sources,
            e_license_holder=holder,
            remedies=remedies,
        )

    def remedies(self, node: yaml.Node, what: str) -> RemedyBodies:
        """`{review_body: ..., court: ...}`: who hears a challenge to a refusal."""
        m = self.mapping(node, what, {"review_body", "court"})
        review_body = (
            self.text_of(m["review_body"][1], f"{what}.review_body") if "review_body" in m else ""
        )
        court = self.text_of(m["court"][1], f"{what}.court") if "court" in m else ""
        return RemedyBodies(review_body.strip(), court.strip())

    def guard(self, fn: Any, fallback: Any) -> Any:
        """Run one part of the file; on a problem already reported, carry on with `fallback`.
        (KeyError: a required key whose absence mapping() reported as MP103.)"""
        try:
            return fn()
        except (_Invalid, KeyError):
            return fallback

    def time_limit(self, head: dict[str, tuple[yaml.Node, yaml.Node]]) -> tuple[int, int, bool]:
        m = self.mapping(
            head["time_limit"][1],
            "item.time_limit",
            {
                "statutory_working_days",
                "promised_working_days",
                "on_the_spot",
                "supplement_working_days",
            },
            ("statutory_working_days", "promised_working_days"),
        )
        statutory = (
            self.int_of(m["statutory_working_days"][1], "法定办结时限")
            if "statutory_working_days" in m
            else 0
        )
        promised = (
            self.int_of(m["promised_working_days"][1], "承诺办结时限")
            if "promised_working_days" in m
            else 0
        )
        on_the_spot = (
            self.bool_of(m["on_the_spot"][1], "on_the_spot")
            if "on_the_spot" in m
            else promised == 0
        )
        if promised > statutory:
            self.diag(m["promised_working_days"][1], "MP105", "承诺时限不能长于法定时限")
        if statutory > MAX_TIME_LIMIT_DAYS:
            self.diag(
                m["statutory_working_days"][1],
                "MP105",
                f"法定办结时限不能超过 {MAX_TIME_LIMIT_DAYS} 个工作日",
            )
        return statutory, promised, on_the_spot

    def supplement_days(self, head: dict[str, tuple[yaml.Node, yaml.Node]]) -> int:
        """item.time_limit.supplement_working_days: how long an applicant has to supply
        deferrable (容缺后补) materials; DEFAULT_SUPPLEMENT_DAYS when absent."""
        m = self.mapping(head["time_limit"][1], "item.time_limit", None, ())
        if "supplement_working_days" not in m:
            return DEFAULT_SUPPLEMENT_DAYS
        node = m["supplement_working_days"][1]
        days = int(self.int_of(node, "容缺补正期限"))
        if not 1 <= days <= MAX_TIME_LIMIT_DAYS:
            self.diag(node, "MP105", f"容缺补正期限须在 1 至 {MAX_TIME_LIMIT_DAYS} 个工作日之间")
            return DEFAULT_SUPPLEMENT_DAYS
        return days

    def legal_basis(self, node: yaml.Node) -> dict[str, LegalBasis]:
        out: dict[str, LegalBasis] = {}
        for key, (key_node, value) in self.mapping(node, "legal_basis").items():
            if not _IDENT.match(key):
                self.diag(key_node, "MP107", f"依据编号 {key!r} 应为标识符")
                continue
            try:
                m = self.mapping(value, f"legal_basis.{key}", {"law", "article"}, ("law",))
                law = self.text_of(m["law"][1], "law") if "law" in m else ""
                law = law.strip().removeprefix("《").removesuffix("》")
                article = self.text_of(m["article"][1], "article") if "article" in m else ""
                out[key] = LegalBasis(key, law, article)
            except _Invalid:
                continue
        return out

    def form(self, node: yaml.Node) -> dict[str, Field]:
        fields: dict[str, Field] = {}
        for path, (key_node, value) in self.mapping(node, "form").items():
            if not _PATH.match(path):
                self.diag(
                    key_node, "MP107", f"字段路径 {path!r} 应形如 主体.字段（如 applicant.age）"
                )
                continue
            if self.reserved(key_node, path):
                continue
            try:
                fields[path] = self.field(path, value)
            except _Invalid:
                fields[path] = Field(
                    path, UNKNOWN_KIND
                )  # already reported; keeps later errors quiet
        if APPLICATION_DATE not in fields:
            fields[APPLICATION_DATE] = Field(
                APPLICATION_DATE,
                "date",
                "申请日期",
                description="决定所依据的日期；缺省为当天（北京时间）",
            )
        elif fields[APPLICATION_DATE].kind != "date" or fields[APPLICATION_DATE].required:
            self.diag(node, "MP105", "application.date 须为非必填的 date 字段")
        self.check_prefixes(node, list(fields))
        return fields

    def reserved(self, key_node: yaml.Node, path: str) -> bool:
        """Report (MP112) a field path whose subject the engine or the fact layout uses."""
        subject = path.split(".")[0]
        if subject in RESERVED_SUBJECTS or subject.startswith("_"):
            self.diag(
                key_node,
                "MP112",
                f"字段路径 {path!r} 的主体 {subject!r} 为规则引擎保留"
                "（sid、id 及以 _ 开头的名称），请换一个名称",
            )
            return True
        return False

    def check_prefixes(self, node: yaml.Node, paths: list[str]) -> None:
        for p in paths:
            for q in paths:
                if q.startswith(p + "."):
                    self.diag(node, "MP107", f"字段 {p} 不能同时是 {q} 的上级")

    def field(self, path: str, node: yaml.Node) -> Field:
        m = self.mapping(node, f"form.{path}", _FIELD_KEYS, ("type",))
        if "type" not in m:
            raise _Invalid()
        kind = self.text_of(m["type"][1], "type")
        if kind not in self.field_types:
            known = "、".join(self.field_types.names)
            raise self.invalid(m["type"][1], "MP105", f"未知的字段类型 {kind!r}（可用：{known}）")
        kw: dict[str, Any] = {"path": path, "kind": kind}
        if "label" in m:
            kw["label"] = self.text_of(m["label"][1], "label")
        if "description" in m:
            kw["description"] = self.text_of(m["description"][1], "description")
        if "required" in m:
            kw["required"] = self.bool_of(m["required"][1], "required")
        for key in OPTIONS:
            if key in m and key not in self.field_types[kind].options:
                kinds = " / ".join(self.field_types.accepting(key))
                self.diag(m[key][0], "MP105", f"{key} 只适用于 {kinds} 字段")
        for key, attr in (("min", "minimum"), ("max", "maximum")):
            if key in m:
                kw[attr] = self.number_of(m[key][1], key)
        if "exclusive_min" in m:
            kw["exclusive_min"] = self.bool_of(m["exclusive_min"][1], "exclusive_min")
        for key in ("min_length", "max_length", "min_items"):
            if key in m:
                kw[key] = self.int_of(m[key][1], key)
        if "values" in m:
            values = self.mapping(m["values"][1], f"form.{path}.values")
            kw["enum"] = tuple((v, self.text_of(n, "标签")) for v, (_, n) in values.items())
        if kind == "enum" and not kw.get("enum"):
            raise self.invalid(node, "MP103", f"枚举字段 {path} 须以 values 列出可选值")
        if kind == "string_list":
            kw["default"] = []  # lists are always present; an omitted list is empty
        if "default" in m:
            if kw.get("required"):
                self.diag(m["default"][0], "MP105", "必填字段不需要缺省值")
            kw["default"] = self.default(m["default"][1], Field(**kw))
        self.conditional(path, m, kw)
        return Field(**kw)

    def conditional(self, path: str, m: dict[str, Any], kw: dict[str, Any]) -> None:
        """`required_when` / `absent_when`: conditions on the form, checked in validation."""
        for key in ("required_when", "absent_when"):
            if key in m:
                kw[key] = self.guard(
                    lambda k=key: self.condition(m[k][1], f"form.{path}.{k}"), None
                )
        if "required_when" in m and kw.get("required"):
            self.diag(
                m["required_when"][0],
                "MP105",
                f"{path} 已是必填字段（required: true），不能再写 required_when",
            )
        if "required_when" in m and "default" in m:
            self.diag(
                m["required_when"][0], "MP105", f"{path} 有缺省值，required_when 永远不会起作用"
            )
        if "absent_when" in m and kw.get("required"):
            self.diag(
                m["absent_when"][0],
                "MP105",
                f"{path} 是必填字段（required: true），不能再写 absent_when",
            )

    def default(self, node: yaml.Node, field: Field) -> Any:
        """A default must be a value a case could send for this field."""
        value = self.constructed(node, f"{field.path} 的缺省值")
        if isinstance(value, dt.date):  # an unquoted YAML date
            value = value.isoformat()
        problem = self.field_types[field.kind].problem(field, value)
        if problem is not None:
            raise self.invalid(node, "MP105", f"{field.path} 的缺省值不可用：{problem}")
        return value

    def derived(self, node: yaml.Node, fields: dict[str, Field]) -> None:
        self.derived_so_far = fields  # a computed fact's type may follow from an earlier one
        for path, (key_node, value) in self.mapping(node, "derived").items():
            if not _PATH.match(path):
                self.diag(key_node, "MP107", f"字段路径 {path!r} 应形如 主体.字段")
                continue
            if self.reserved(key_node, path):
                continue
            if path in fields:
                self.diag(key_node, "MP104", f"派生字段 {path} 与表单字段重名")
                continue
            try:
                m = self.mapping(value, f"derived.{path}", {"function", "from", "label", COMPUTE})
                if COMPUTE in m:
                    fields[path] = self.computed(path, value, m)
                    continue
                for key in ("function", "from"):
                    if key not in m:
                        self.diag(value, "MP103", f"derived.{path} 缺少必填项 {key!r}")
                fn = self.text_of(m["function"][1], "function")
                source = self.text_of(m["from"][1], "from")
            except (_Invalid, KeyError):
                continue
            if fn not in DERIVE_FUNCTIONS:
                self.diag(
                    m["function"][1],
                    "MP330",
                    f"未知的派生函数 {fn!r}（可用：{'、'.join(DERIVE_FUNCTIONS)}）",
                )
                continue
            source_kind, result_kind = DERIVE_FUNCTIONS[fn]
            src = fields.get(source)
            if src is None or src.kind != source_kind:
                self.diag(m["from"][1], "MP330", f"{fn} 需要一个 {source_kind} 类型的表单字段")
                continue
            label = self.text_of(m["label"][1], "label") if "label" in m else ""
            fields[path] = Field(
                path, result_kind, label, required=src.required, derive=fn, derive_from=source
            )
        self.check_prefixes(node, list(fields))

    def computed(
        self, path: str, node: yaml.Node, m: dict[str, tuple[yaml.Node, yaml.Node]]
    ) -> Field:
        """A derived fact computed from the case: `{compute: <expression>, label: ...}`. Its
        type follows from the expression (checked when the item is compiled)."""
        for key in ("function", "from"):
            if key in m:
                self.diag(node, "MP102", f"derived.{path} 写了 compute，就不写 {key}")
        expr = self.expression(m[COMPUTE][1], f"derived.{path}.compute")
        label = self.text_of(m["label"][1], "label") if "label" in m else ""
        return Field(
            path, self.kind_of(expr.tree, self.derived_so_far), label, derive=COMPUTE, compute=expr
        )

    @staticmethod
    def kind_of(side: ast.Side, fields: dict[str, Field]) -> str:
        """The field type of a computed value, as far as it can be told before compiling
        (which reports what is wrong with it)."""
        if isinstance(side, ast.Shift):
            return "date"
        if isinstance(side, ast.DaysBetween):
            return "integer"
        if isinstance(side, ast.Path):
            f = fields.get(side.name)
            return f.kind if f is not None else UNKNOWN_KIND
        if isinstance(side, ast.Const):
            v = side.value
            if isinstance(v, bool) or not isinstance(v, int | float):
                return "date" if isinstance(v, str) and parse_date(v) else "string"
            return "integer" if isinstance(v, int) else "number"
        return UNKNOWN_KIND

    def local_lists(self, node: yaml.Node) -> dict[str, tuple[str, ...]]:
        return _read_lists(self, node)

    def materials(self, node: yaml.Node) -> tuple[Material, ...]:
        out: list[Material] = []
        seen: set[str] = set()
        for entry in self.sequence(node, "materials"):
            try:
                m = self.mapping(
                    entry,
                    "材料",
                    {"id", "name", "need", "e_license", "e_license_type", "when"},
                    ("id", "name", "need"),
                )
                mid = self.text_of(m["id"][1], "id")
                if not _IDENT.match(mid) or not mid.isascii():
                    raise self.invalid(m["id"][1], "MP107", f"材料编号 {mid!r} 应为英文标识符")
                if mid in seen:
                    raise self.invalid(m["id"][1], "MP106", f"重复的材料编号 {mid!r}")
                seen.add(mid)
                need = self.text_of(m["need"][1], "need")
                if need not in MATERIAL_NEEDS:
                    raise self.invalid(
                        m["need"][1], "MP105", f"need 应为 {'、'.join(MATERIAL_NEEDS)} 之一"
                    )
                when = self.condition(m["when"][1], f"材料 {mid} 的 when") if "when" in m else None
                e_license = (
                    self.bool_of(m["e_license"][1], "e_license") if "e_license" in m else False
                )
                licence_type = (
                    self.text_of(m["e_license_type"][1], "e_license_type")
                    if "e_license_type" in m
                    else ""
                )
                out.append(
                    Material(
                        mid, self.text_of(m["name"][1], "name"), need, e_license, when, licence_type
                    )
                )
            except (_Invalid, KeyError):
                continue
        return tuple(out)

    def rules(self, node: yaml.Node, legal: dict[str, LegalBasis]) -> tuple[Rule, ...]:
        out: list[Rule] = []
        seen: set[str] = set()
        for entry in self.sequence(node, "rules"):
            try:
                out.append(self.rule(entry, legal, seen))
            except (_Invalid, KeyError):
                continue
        return tuple(out)

    def rule(self, entry: yaml.Node, legal: dict[str, LegalBasis], seen: set[str]) -> Rule:
        """One rule; every part is checked before giving up, so all its problems are reported."""
        m = self.mapping(
            entry,
            "规则",
            {"id", "when", "outcome", "message", "basis", "outputs"},
            ("id", "when", "outcome", "message", "basis"),
        )
        ok = True

        def part(key: str, read: Any) -> Any:
            nonlocal ok
            if key not in m:
                ok = False
                return None
            try:
                return read(m[key][1])
            except _Invalid:
                ok = False
                return None

        rid = part("id", lambda n: self.text_of(n, "id"))
        if rid is not None:
            if not _IDENT.match(rid) or not rid.isascii():
                self.diag(m["id"][1], "MP107", f"规则编号 {rid!r} 应为英文标识符")
                ok = False
            elif rid in seen:
                self.diag(m["id"][1], "MP106", f"重复的规则编号 {rid!r}")
                ok = False
            seen.add(rid)
        outcome = part("outcome", lambda n: self.text_of(n, "outcome"))
        if outcome is not None and outcome not in OUTCOMES:
            self.diag(
                m["outcome"][1], "MP105", f"outcome {outcome!r} 应为 {'、'.join(OUTCOMES)} 之一"
            )
            ok = False
        basis = part("basis", lambda n: self.text_of(n, "basis"))
        if basis is not None and basis not in legal:
            self.diag(m["basis"][1], "MP320", f"basis 引用了未定义的依据 {basis!r}")
        when = part("when", lambda n: self.condition(n, f"规则 {rid} 的 when"))
        message = part("message", lambda n: self.text_of(n, "message"))
        outputs = part("outputs", lambda n: self.outputs(n, rid or "?")) if "outputs" in m else ()
        if not ok:
            raise _Invalid()
        return Rule(rid, when, outcome, message, basis, outputs)

    def constructed(self, node: yaml.Node, what: str) -> Any:
        """A YAML value as PyYAML builds it; MP105 (not MP199) for one it cannot build: an
        integer of more than 4,300 digits (Python's int() limit), or lists and mappings
        nested deeper than its recursion walks (a few hundred levels)."""
        try:
            return _construct(node)
        except ValueError:
            raise self.invalid(node, "MP105", f"{what}{_TOO_BIG}") from None
        except RecursionError:
            raise self.invalid(node, "MP105", f"{what}嵌套过深") from None

    def output_value(self, node: yaml.Node, name: str) -> Any:
        """An output's value, as a decision carries it (its proto3 JSON and the response's
        Struct): see _output_problem."""
        value = self.constructed(node, f"输出 {name} 的值")
        problem = _output_problem(value)
        if problem is not None:
            self.diag(node, "MP105", f"输出 {name} 的值{problem}")
        return value

    def outputs(self, node: yaml.Node, rid: str) -> tuple[tuple[str, tuple[OutputCase, ...]], ...]:
        out = []
        for name, (key_node, value) in self.mapping(node, f"规则 {rid} 的 outputs").items():
            if not _IDENT.match(name):
                self.diag(key_node, "MP107", f"输出名 {name!r} 应为标识符")
                continue
            cases: list[OutputCase] = []
            if not isinstance(value, yaml.SequenceNode):  # a constant output
                cases.append(OutputCase(self.output_value(value, name)))
            else:
                for case in value.value:
                    c = self.mapping(case, f"输出 {name}", {"when", "value", COMPUTE})
                    if "value" not in c and COMPUTE not in c:
                        self.diag(case, "MP103", f"输出 {name} 缺少必填项 'value'（或 compute）")
                        continue
                    if "value" in c and COMPUTE in c:
                        self.diag(
                            case,
                            "MP102",
                            f"输出 {name} 的一项只能写 value 或 compute 之一",
                        )
                        continue
                    when = (
                        self.condition(c["when"][1], f"输出 {name} 的 when")
                        if "when" in c
                        else None
                    )
                    if COMPUTE in c:
                        expr = self.expression(c[COMPUTE][1], f"输出 {name} 的 compute")
                        cases.append(OutputCase(None, when, expr))
                    else:
                        cases.append(OutputCase(self.output_value(c["value"][1], name), when))
                if cases and cases[-1].when is not None:
                    self.diag(
                        value,
                        "MP103",
                        f"输出 {name} 的最后一项应为不带 when 的兜底值",
                        severity="warning",
                    )
            out.append((name, tuple(cases)))
        return tuple(out)


_TOO_BIG = "超出范围（绝对值不超过 10^15）"
# Lists and mappings in an output's value, one inside another: the response's Struct spends
# two or three of protobuf's 100 nesting levels on each, and a window's client refuses to
# read a deeper response ("Exception deserializing response!", after the decision was
# recorded). Amounts and dates need none; a small table needs two.
MAX_OUTPUT_NESTING = 16


def _output_problem(value: Any, depth: int = 0) -> str | None:
    """Why a decision could not carry an output's value as the file writes it, or None.
    .inf and .nan have no JSON form; a mapping key that is not text (`{1: a}`, `{null: a}`)
    has none either (the response could not be built, after the decision was recorded); a
    number beyond 10^15 (the bound of conditions and case values) may not survive the
    double a Struct holds; `!!binary` and `!!set` would reach the window as a list of byte
    values or of the set's members; see MAX_OUTPUT_NESTING."""
    if value is None or isinstance(value, (bool, str, dt.date)):
        return None
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            return "不能是无穷大或 NaN"
        return _TOO_BIG if abs(value) > MAX_NUMBER else None
    if isinstance(value, (list, dict)) and depth >= MAX_OUTPUT_NESTING:
        return f"嵌套过深（列表、映射不超过 {MAX_OUTPUT_NESTING} 层）"
    if isinstance(value, dict) and not all(isinstance(k, str) for k in value):
        return "中映射的键须为文字"
    if isinstance(value, (list, dict)):
        items = value.values() if isinstance(value, dict) else value
        problems = (_output_problem(v, depth + 1) for v in items)
        return next((p for p in problems if p is not None), None)
    kinds = "数字、文字、日期、true/false、列表和映射"
    return f"不能是 YAML 的 {type(value).__name__} 类型（只能是{kinds}）"


def _construct(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


MAX_LIST_NESTING = 16  # lists made by union of lists made by union of ...: far beyond need


def _read_lists(loader: _FileLoader, node: yaml.Node) -> dict[str, tuple[str, ...]]:
    """Named lists: {name: {label, values: [...]}} or {name: {label, union: [other names]}}."""
    raw: dict[str, tuple[yaml.Node, dict[str, tuple[yaml.Node, yaml.Node]]]] = {}
    for name, (key_node, value) in loader.mapping(node, "lists").items():
        if not _IDENT.match(name):
            loader.diag(key_node, "MP107", f"清单名称 {name!r} 应为标识符")
            continue
        try:
            raw[name] = (
                key_node,
                loader.mapping(value, f"清单 {name}", {"label", "values", "union"}),
            )
        except _Invalid:
            continue
    out: dict[str, tuple[str, ...]] = {}
    failed: set[str] = set()  # reported once, not again for every list that uses it

    def resolve(name: str, trail: tuple[str, ...]) -> tuple[str, ...]:
        if name in out:
            return out[name]
        if name in failed:
            raise _Invalid()
        _key_node, m = raw[name]
        values: list[str] = []
        if "values" in m:
            for v in loader.sequence(m["values"][1], f"清单 {name}"):
                values.append(loader.text_of(v, f"清单 {name} 的值"))
        for ref in loader.sequence(m["union"][1], f"清单 {name}") if "union" in m else []:
            other = loader.text_of(ref, "union")
            if other in trail:
                raise loader.invalid(ref, "MP322", f"清单 {name} 循环引用了 {other}")
            if other not in raw:
                raise loader.invalid(ref, "MP321", f"清单 {name} 引用了未定义的清单 {other}")
            if len(trail) >= MAX_LIST_NESTING:  # resolved recursively: bounded, and located
                raise loader.invalid(
                    ref, "MP323", f"清单 union 嵌套过深（不超过 {MAX_LIST_NESTING} 层）"
                )
            try:
                values.extend(resolve(other, (*trail, other)))
            except _Invalid:
                failed.add(name)
                raise
        out[name] = tuple(dict.fromkeys(values))
        return out[name]

    for name in raw:
        try:
            values = resolve(name, (name,))
        except _Invalid:
            continue
        if len(values) > MAX_LIST_VALUES:
            loader.diag(
                raw[name][0],
                "MP343",
                f"清单 {name} 有 {len(values)} 个值，超过上限 {MAX_LIST_VALUES}",
            )
            del out[name]
    return out


def _conditions(
    rules: tuple[Rule, ...], materials: tuple[Material, ...], fields: Mapping[str, Field]
) -> Iterator[Condition]:
    for r in rules:
        yield r.when
        for _, cases in r.outputs:
            yield from (c.when for c in cases if c.when is not None)
    yield from (m.when for m in materials if m.when is not None)
    for f in fields.values():
        yield from (c for c in (f.required_when, f.absent_when) if c is not None)


def conditions_of(item: Item) -> Iterator[Condition]:
    """Every condition an item's rule file contains (form conditions included)."""
    return _conditions(item.rules, item.materials, item.fields)


def load_shared_lists(root: Path) -> tuple[dict[str, tuple[str, ...]], list[Diagnostic]]:
    lists: dict[str, tuple[str, ...]] = {}
    diagnostics: list[Diagnostic] = []
    lists_dir = root / LISTS_DIR
    for path in sorted(lists_dir.rglob("*.y*ml")) if lists_dir.is_dir() else []:
        # A list file has no form: the standard field types are never consulted.
        loader = _FileLoader(path, display_path(root, path), {}, FIELD_TYPES)
        try:
            node = loader.compose()
            if node is None:
                diagnostics.extend(loader.diagnostics)
                continue
            top = loader.mapping(
                None if isinstance(node, _Empty) else node, "清单文件", {"lists"}, ("lists",)
            )
            for name, values in _read_lists(loader, top["lists"][1]).items():
                if name in lists:
                    loader.diag(top["lists"][1], "MP104", f"清单 {name} 在多个文件中定义")
                lists[name] = values
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            loader.diagnostics.append(
                Diagnostic(
                    loader.display,
                    mark.line + 1 if mark else 1,
                    mark.column + 1 if mark else 1,
                    "MP100",
                    f"YAML 语法错误：{getattr(exc, 'problem', None) or exc}",
                )
            )
        except (_Invalid, KeyError, UnicodeDecodeError):
            pass
        diagnostics.extend(loader.diagnostics)
    return lists, diagnostics


def department_files(root: Path) -> list[Path]:
    folder = root / DEPARTMENTS_DIR
    return sorted(folder.rglob("*.y*ml")) if folder.is_dir() else []


def load_departments(root: Path) -> tuple[dict[str, RemedyBodies], list[Diagnostic]]:
    """Department defaults from `departments/*.yaml`: `departments: {<item.department as
    written>: {remedies: {review_body, court}}}`. A department in two files is MP104."""
    departments: dict[str, RemedyBodies] = {}
    diagnostics: list[Diagnostic] = []
    for path in department_files(root):
        loader = _FileLoader(path, display_path(root, path), {}, FIELD_TYPES)
        node = loader.compose()
        if node is not None:
            try:
                top = loader.mapping(
                    None if isinstance(node, _Empty) else node,
                    "部门文件",
                    {"departments"},
                    ("departments",),
                )
                for name, (key_node, value) in loader.mapping(
                    top["departments"][1], "departments"
                ).items():
                    try:
                        m = loader.mapping(value, f"部门 {name}", {"remedies"}, ("remedies",))
                        bodies = loader.remedies(m["remedies"][1], f"部门 {name} 的 remedies")
                    except (_Invalid, KeyError):
                        continue
                    if name in departments:
                        loader.diag(key_node, "MP104", f"部门 {name} 在多个文件中定义")
                    departments[name] = bodies
            except (_Invalid, KeyError):
                pass
        diagnostics.extend(loader.diagnostics)
    return departments, diagnostics


def display_path(root: Path, path: Path) -> str:
    try:
        return str(path.relative_to(root.parent))
    except ValueError:
        return str(path)


def item_files(root: Path) -> list[Path]:
    shared = (LISTS_DIR, DEPARTMENTS_DIR)
    return sorted(
        p
        for p in root.rglob("*.y*ml")
        if p.suffix in (".yaml", ".yml") and not any(d in p.relative_to(root).parts for d in shared)
    )


def load_rule_file(
    path: Path,
    root: Path,
    lists: dict[str, tuple[str, ...]],
    field_types: FieldTypes = FIELD_TYPES,
    departments: Mapping[str, RemedyBodies] | None = None,
) -> tuple[Item | None, list[Diagnostic]]:
    """Load one rule file; `field_types` are the field types its form may use, `departments`
    the directory's department defaults (load_departments)."""
    loader = _FileLoader(path, display_path(root, path), lists, field_types, departments)
    item = loader.load()
    return item, loader.diagnostics
