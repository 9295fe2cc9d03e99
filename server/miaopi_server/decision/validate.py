"""Validate a case against an item's form before any rule runs.

Every bad field is collected and reported at once (one CaseInvalid). A valid case comes out
normalized: defaults filled in, integers as int, application.date set, derived facts computed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from miaopi_server.errors import CaseInvalid, FieldViolation
from miaopi_server.lang import ast
from miaopi_server.lang.probes import MISSING, term_value
from miaopi_server.lang.reference import evaluate
from miaopi_server.rules.fieldtypes import ValueRejected, as_of_date, as_of_problem
from miaopi_server.rules.identity import age_on
from miaopi_server.rules.model import APPLICATION_DATE, NO_DEFAULT, Item

MAX_DEPTH = 8  # nesting of facts objects and lists
MAX_VALUES = 2000  # every object, list and scalar in facts counts
MAX_MATERIALS = 100
MAX_VIOLATIONS = 100  # a hostile case must not make an unbounded error report


@dataclass(frozen=True)
class AsOf:
    """The as-of date a case asks for, read once per decision (the rule version is chosen by
    it, and validation and the decision use it): `given` is the case's application.date as
    sent (None: it gives none), `day` the date that names (None: not a valid as-of date,
    which validation refuses), `today` the date a case that gives none is decided on."""

    given: Any
    day: dt.date | None
    today: dt.date

    @property
    def date(self) -> dt.date:
        """The date the rule version in force is chosen by (today when none valid is given)."""
        return self.day or self.today


_DATE_SUBJECT, _, _DATE_NAME = APPLICATION_DATE.partition(".")


def given_date(facts: Any) -> Any:
    """The application.date a case gives (any JSON value), or None when it gives none."""
    value = facts.get(_DATE_SUBJECT) if isinstance(facts, dict) else None
    return value.get(_DATE_NAME) if isinstance(value, dict) else None


def asked_as_of(facts: Any, today: dt.date) -> AsOf:
    given = given_date(facts)
    # Built in one step: a frozen dataclass's __init__ sets each field via object.__setattr__
    # (read once per decision, on the request path).
    asked = _new(AsOf)
    _setattr(
        asked,
        "__dict__",
        {"given": given, "day": as_of_date(given) if given is not None else None, "today": today},
    )
    return asked


_new = object.__new__
_setattr = object.__setattr__


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
    given = frozenset(values)  # what the window (or shared data) sent, before defaults

    # A given application.date is checked below like any date field and never replaced: only
    # a case that gives none is decided as of today. A bad one leaves `as_of` at today for the
    # other checks, and the case is refused anyway.
    if APPLICATION_DATE not in values:
        values[APPLICATION_DATE] = today.isoformat()
    as_of = as_of_date(values[APPLICATION_DATE]) or today
    out_of_range = as_of_problem(values[APPLICATION_DATE])
    if out_of_range:
        violations.append(FieldViolation(f"facts.{APPLICATION_DATE}", out_of_range))
        del values[APPLICATION_DATE]

    parsed: dict[str, Any] = {}  # identity numbers decoded once, reused by derive
    for f, check, normalize in item.form_checks:
        if f.path in values:
            try:
                decoded = check(f, values[f.path], as_of)
            except ValueRejected as exc:
                violations.append(FieldViolation(f"facts.{f.path}", str(exc)))
                del values[f.path]
                continue
            if normalize is not None:
                values[f.path] = normalize(values[f.path])
            if decoded is not None:
                parsed[f.path] = decoded
        elif f.required or (f.path in item.source_backed and not f.has_default):  # nor source
            violations.append(FieldViolation(f"facts.{f.path}", f"必填项（{f.label or f.path}）"))
        elif f.default is not NO_DEFAULT:
            values[f.path] = list(f.default) if isinstance(f.default, list) else f.default

    check_conditions(item, values, given, violations)
    submitted = _materials(item, materials, violations)
    if violations:
        if len(violations) > MAX_VIOLATIONS:
            more = len(violations) - MAX_VIOLATIONS
            violations = [
                *violations[:MAX_VIOLATIONS],
                FieldViolation("facts", f"另有 {more} 处错误"),
            ]
        raise CaseInvalid(violations)
    derived = derive(item, parsed, as_of, values)
    return Case({**values, **derived}, derived, submitted, as_of)


def check_conditions(
    item: Item, values: dict[str, Any], given: frozenset[str], violations: list[FieldViolation]
) -> None:
    """`required_when` / `absent_when`, on the normalized form facts. A condition reading a
    field that is itself bad is not judged: the case is refused for that field already."""
    bad = {v.field.removeprefix("facts.") for v in violations}
    get = lambda path: values.get(path, MISSING)  # noqa: E731
    for f in item.fields.values():
        for cond, required in ((f.required_when, True), (f.absent_when, False)):
            if cond is None or f.path in bad:
                continue
            if any(p in bad for p in ast.paths_of(cond.tree)):
                continue
            if not evaluate(cond.tree, get, item.lists):
                continue
            name = f.label or f.path
            if required and f.path not in values:
                violations.append(
                    FieldViolation(f"facts.{f.path}", f"必填项（{name}）：{cond.source} 时必须填写")
                )
            elif not required and f.path in given:
                violations.append(
                    FieldViolation(f"facts.{f.path}", f"不应填写（{name}）：{cond.source} 时不适用")
                )


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
        if "." in str(key):
            # A key is one name; the form's dotted paths are nested objects. Reading
            # {"application.date": ...} as a path would let two keys give one field (and the
            # rule version is chosen from the nested key only), so it is refused, not mapped.
            shown = str(key) if len(str(key)) <= 64 else str(key)[:64] + "…"
            violations.append(
                FieldViolation(
                    f"facts.{prefix}{shown}",
                    f"字段名 {shown!r} 含“.”：路径的每一级是一层对象，"
                    '如 {"application": {"date": …}}',
                )
            )
            continue
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


def derive(
    item: Item, parsed: dict[str, Any], as_of: dt.date, values: dict[str, Any]
) -> dict[str, Any]:
    """Derived facts: from the identity numbers decoded during validation, then the computed
    ones in file order, from the form's facts and the facts derived before them (a missing
    fact, or a date moved off the calendar, leaves the computed fact missing)."""
    out: dict[str, Any] = {}
    for f in item.derived_fields:
        if f.compute is not None:
            continue
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
    get = lambda p: out.get(p, values.get(p, MISSING))  # noqa: E731
    for path, expr in item.computed:
        value = term_value(expr.term, get)
        if value is not MISSING:
            out[path] = value
    return out
