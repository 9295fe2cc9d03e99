"""Validate a case against an item's form before any rule runs.

Every bad field is collected and reported at once (one CaseInvalid). A valid case comes out
normalized: defaults filled in, integers as int, application.date set, derived facts computed.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from miaopi_server.errors import CaseInvalid, FieldViolation
from miaopi_server.rules.identity import (
    IdentityError,
    age_on,
    check_region_code,
    parse_credit_code,
    parse_resident_id,
)
from miaopi_server.rules.model import APPLICATION_DATE, NO_DEFAULT, Field, Item

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
MAX_STRING = 1000  # characters; far above any form's own limits, bounds the work per field
MAX_DEPTH = 8  # nesting of facts objects and lists
MAX_VALUES = 2000  # every object, list and scalar in facts counts
MAX_MATERIALS = 100
MAX_VIOLATIONS = 100  # a hostile case must not make an unbounded error report


@dataclass(frozen=True)
class Case:
    """A validated, normalized case: flat facts by dotted path, derived facts included."""

    values: dict[str, Any]
    derived: dict[str, Any]
    materials: frozenset[str]
    as_of: dt.date


def validate_case(item: Item, facts: Any, materials: Any, today: dt.date) -> Case:
    """Check `facts` and `materials` against the item; raise CaseInvalid naming every bad one."""
    violations: list[FieldViolation] = []
    values: dict[str, Any] = {}
    if not isinstance(facts, dict):  # JSON objects and Structs both arrive as dicts
        violations.append(FieldViolation("facts", "应为按主体分组的对象"))
        facts = {}
    shape = _shape_problem(facts, materials)
    if shape is not None:
        raise CaseInvalid([shape])
    _walk(item, facts, "", values, violations)

    as_of = today
    date_value = values.get(APPLICATION_DATE)
    if isinstance(date_value, str):
        parsed = _parse_date(date_value)
        if parsed is not None:
            as_of = parsed
    else:
        values[APPLICATION_DATE] = today.isoformat()

    parsed: dict[str, Any] = {}  # identity numbers decoded once, reused by _derive
    for f in item.form_fields:
        if f.path in values:
            problem = _check(f, values[f.path], as_of, parsed)
            if problem is None:
                values[f.path] = _normalize(f, values[f.path])
            else:
                violations.append(FieldViolation(f"facts.{f.path}", problem))
                del values[f.path]
        elif f.required:
            violations.append(FieldViolation(f"facts.{f.path}", f"必填项（{f.label or f.path}）"))
        elif f.default is not NO_DEFAULT:
            values[f.path] = list(f.default) if isinstance(f.default, list) else f.default

    submitted = _materials(item, materials, violations)
    if violations:
        if len(violations) > MAX_VIOLATIONS:
            more = len(violations) - MAX_VIOLATIONS
            violations = [
                *violations[:MAX_VIOLATIONS],
                FieldViolation("facts", f"另有 {more} 处错误"),
            ]
        raise CaseInvalid(violations)
    derived = _derive(item, parsed, as_of)
    return Case({**values, **derived}, derived, submitted, as_of)


def _shape_problem(facts: Mapping[Any, Any], materials: Any) -> FieldViolation | None:
    """Limits checked before anything else looks at the case: depth, size, materials count.
    Every key, object, list and scalar counts as one value; only containers are visited."""
    stack: list[tuple[Any, int]] = [(facts, 1)]
    count = 1
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        count += 2 * len(node) if isinstance(node, dict) else len(node)
        if count > MAX_VALUES:
            return FieldViolation("facts", f"值过多（不超过 {MAX_VALUES} 个）")
        if len(node) and depth >= MAX_DEPTH:
            return FieldViolation("facts", f"嵌套过深（不超过 {MAX_DEPTH} 层）")
        stack.extend((v, depth + 1) for v in children if isinstance(v, dict | list))
    if isinstance(materials, list | tuple) and len(materials) > MAX_MATERIALS:
        return FieldViolation("materials", f"材料过多（不超过 {MAX_MATERIALS} 项）")
    return None


def _walk(
    item: Item,
    node: Mapping[Any, Any],
    prefix: str,
    out: dict[str, Any],
    violations: list[FieldViolation],
) -> None:
    for key, value in node.items():
        path = f"{prefix}{key}"
        f = item.fields.get(path)
        if f is not None:
            if f.derived:
                violations.append(FieldViolation(f"facts.{path}", "派生字段由系统计算，请勿提交"))
            elif value is not None:  # null means "not given"
                out[path] = value
        elif path in item.subjects:
            if isinstance(value, dict):
                _walk(item, value, path + ".", out, violations)
            elif value is not None:
                violations.append(FieldViolation(f"facts.{path}", "应为对象"))
        else:
            violations.append(FieldViolation(f"facts.{path}", "表单中没有此字段"))


def _parse_date(text: str) -> dt.date | None:
    if not _DATE.fullmatch(text):
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


# Control characters (Cc), lone surrogates (Cs) and private-use code points (Co).
_BAD_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ue000-\uf8ff\U000f0000-\U0010ffff]")


def _bad_text(value: str) -> str | None:
    if len(value) > MAX_STRING:
        return f"过长（不超过 {MAX_STRING} 字）"
    if _BAD_CHARS.search(value):
        return "含有控制字符或无效字符"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_value(f: Field, value: Any) -> str | None:
    """None when `value` is acceptable for `f` (used for rule-file defaults), else why not."""
    return _check(f, value, dt.date.max, {})


def _check(f: Field, value: Any, as_of: dt.date, parsed: dict[str, Any]) -> str | None:
    """None when `value` is acceptable for field `f`, else a plain description of the problem."""
    kind = f.kind
    if kind == "boolean":
        return None if isinstance(value, bool) else "应为 true 或 false"
    if kind in ("integer", "number"):
        if not _is_number(value):
            return "应为数字"
        if kind == "integer" and not float(value).is_integer():
            return "应为整数"
        if f.minimum is not None and (
            value < f.minimum or (f.exclusive_min and value == f.minimum)
        ):
            return f"应{'大于' if f.exclusive_min else '不小于'} {_num(f.minimum)}"
        if f.maximum is not None and value > f.maximum:
            return f"应不大于 {_num(f.maximum)}"
        return None
    if kind == "string_list":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return "应为文字列表"
        if len(value) < f.min_items:
            return f"至少填写 {f.min_items} 项"
        if len(value) > MAX_STRING:
            return "项数过多"
        for v in value:
            problem = _bad_text(v) or _length(f, v)
            if problem:
                return f"第 {value.index(v) + 1} 项{problem}"
        return None
    if not isinstance(value, str):
        return "应为文字"
    problem = _bad_text(value)
    if problem:
        return problem
    if kind == "string":
        return _length(f, value)
    if kind == "date":
        return None if _parse_date(value) else "应为有效日期 YYYY-MM-DD"
    if kind == "enum":
        if value in f.enum_values:
            return None
        return "应为以下之一：" + "、".join(f"{v}（{label}）" for v, label in f.enum)
    try:
        if kind == "region_code":
            check_region_code(value)
        elif kind == "resident_id":
            parsed[f.path] = parse_resident_id(value, as_of)
        elif kind == "credit_code":
            parsed[f.path] = parse_credit_code(value)
    except IdentityError as exc:
        return str(exc)
    return None


def _length(f: Field, value: str) -> str | None:
    if len(value) < max(f.min_length, 1 if f.kind == "string" else 0):
        return "不能为空"
    if f.max_length and len(value) > f.max_length:
        return f"不超过 {f.max_length} 字"
    return None


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _normalize(f: Field, value: Any) -> Any:
    if f.kind == "integer":
        return int(value)
    if f.kind == "number" and float(value).is_integer():
        return int(value)
    return value


def _materials(item: Item, materials: Any, violations: list[FieldViolation]) -> frozenset[str]:
    known = {m.id for m in item.materials}
    if not isinstance(materials, list | tuple):
        violations.append(FieldViolation("materials", "应为材料编号列表"))
        return frozenset()
    submitted: set[str] = set()
    for i, m in enumerate(materials):
        if not isinstance(m, str) or m not in known:
            shown = m if isinstance(m, str) and len(m) <= 64 else "…"
            violations.append(FieldViolation(f"materials[{i}]", f"未知的材料编号 {shown!r}"))
        else:
            submitted.add(m)
    return frozenset(submitted)


def _derive(item: Item, parsed: dict[str, Any], as_of: dt.date) -> dict[str, Any]:
    """Derived facts from the identity numbers decoded during validation."""
    out: dict[str, Any] = {}
    for f in item.derived_fields:
        source = parsed.get(f.derive_from)
        if source is None:
            continue
        if f.derive == "age":
            out[f.path] = age_on(source.birth_date, as_of)
        elif f.derive == "birth_date":
            out[f.path] = source.birth_date.isoformat()
        elif f.derive == "credit_code_checksum_ok":
            out[f.path] = source.checksum_ok
        elif f.derive == "credit_code_kind":
            out[f.path] = source.kind
    return out
