"""An item's plain-case validation as generated code: one Python function per item, written
out and compiled once when the item is loaded.

The function takes the case the way `Validator.plain` does and returns the same Case, but
the per-field work is straight-line code: every key the form knows is read at its place,
each value's cheap test is written inline (no table walk, no per-field tuple of closures),
defaults and derived facts follow; values read in the form's order are put back in the
case's key order when it differs (the reference's walk follows the case). It accepts only
what it is sure of; anything else (an unknown key, a value its inline test does not pass,
a violated condition, an unknown material) returns None and the caller asks
`Validator.plain`, then the reference `validate.validate_case`, as before.

A rule file is input from a department, so nothing from it is written into the source text:
field names, paths, bounds, defaults, enum values and checks are handed to the code as
constants in its namespace, named by position (`k3`, `p3`, `lo3`, ...). The source holds only
names this module makes up and Python it writes itself.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable
from typing import Any

from miaopi_server.decision.validate import (
    MAX_DEPTH,
    MAX_MATERIALS,
    MAX_VALUES,
    AsOf,
    Case,
    check_conditions,
    derive,
)
from miaopi_server.errors import FieldViolation
from miaopi_server.lang.parser import MAX_NUMBER
from miaopi_server.rules.fieldtypes import (
    FIELD_TYPES,
    MAX_STRING,
    ValueRejected,
    as_of_date,
    parse_date,
)
from miaopi_server.rules.identity import age_on
from miaopi_server.rules.model import APPLICATION_DATE, NO_DEFAULT, Field, Item

Generated = Callable[[Any, Any, AsOf], "Case | None"]
# What the generated code needs besides its constants: a field type's check, its decoder
# (decision/validator.py), its cheap test (None: no inline test for the type).
Decode = Callable[[Any, dt.date], Any]
Plain = Callable[[Any], bool]
TextMatch = Callable[[str], Any]  # a compiled pattern's fullmatch
# The derive functions written inline; another one (or a computed fact) calls `derive`.
_INLINE_DERIVE = frozenset({"age", "birth_date", "credit_code_checksum_ok", "credit_code_kind"})
# Key orders remembered per object as valid (each an in-order subset of the form's keys).
MAX_ORDERS = 512

_RID_SHAPE = re.compile(r"[0-9]{17}[0-9X]").fullmatch
_RID_CHECK = "10X98765432"  # GB 11643-1999 check characters, as rules/identity.py
_EARLIEST_BIRTH = dt.date(1850, 1, 1)  # rules/identity.py refuses earlier birth years


def resident_birth(v: Any, as_of: dt.date) -> dt.date | None:
    """The birth date in a resident ID number `parse_resident_id` accepts as it is (digits,
    a real date from 1850 to `as_of`, the right check character); None: not sure, the
    parser says. Only the birth date: the derived facts written inline need nothing else,
    and building the parser's ResidentId was a third of validating a senior case."""
    if v.__class__ is not str or len(v) != 18 or _RID_SHAPE(v) is None:
        return None
    try:
        birth = dt.date.fromisoformat(v[6:14])  # eight ASCII digits: YYYYMMDD
    except ValueError:
        return None
    if birth < _EARLIEST_BIRTH or birth > as_of:
        return None
    return birth if _RID_CHECK[int(v[:17], 13) * 2 % 11] == v[17] else None


def _known(keys: tuple[Any, ...], index: dict[Any, int], seen: dict[Any, bool]) -> bool | None:
    """None when a key is not one the form has at this level; else whether the keys come in
    the form's order (the order the generated code reads them in). Remembered in `seen`."""
    last, in_order = -1, True
    for k in keys:
        i = index.get(k) if k.__class__ is str else None
        if i is None:
            return None
        in_order = in_order and i > last
        last = i
    if len(seen) < MAX_ORDERS:
        seen[keys] = in_order
    return in_order


def _in_case_order(node: dict[str, Any], table: Table, values: dict[str, Any]) -> dict[str, Any]:
    """`values` (every key known, the given values) in the order of the case's keys, as the
    reference's walk puts them in (the generated code reads in the form's order)."""
    out: dict[str, Any] = {}

    def walk(node: dict[str, Any], table: Table) -> None:
        for key, value in node.items():
            entry = table[key]
            if isinstance(entry, dict):
                if value is not None:
                    walk(value, entry)
            elif entry.path in values:
                out[entry.path] = values[entry.path]

    walk(node, table)
    return out


class _Writer:
    """Source lines and the constants they name."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[str, Any] = {}
        self.births: set[str] = set()  # locals holding a birth date (resident_birth)
        self._n = 0

    def const(self, stem: str, value: Any) -> str:
        name = f"{stem}{self._n}"
        self._n += 1
        self.names[name] = value
        return name

    def line(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)


# A subject's keys: a form field (Field) or the nested subject's own table.
Table = dict[str, "Field | Table"]


def _table(item: Item) -> Table:
    table: Table = {}
    for f in item.form_fields:
        node = table
        *parents, leaf = f.path.split(".")
        for p in parents:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise _NotGenerated  # a field and a subject of one name: leave it to the check
            node = nxt
        node[leaf] = f
    return table


class _NotGenerated(Exception):
    """The item has something the generator does not write code for (the callers then use
    Validator.plain and the reference, as for every item before)."""


def generate(
    item: Item,
    tests: dict[str, tuple[Plain | None, Decode | None]],
    sure_subjects: frozenset[str],
    text: TextMatch,
) -> Generated | None:
    """The item's generated plain-case validation, or None when the item has something it
    does not write code for. `tests`: per form path, its cheap test and its decoder (the
    ones Validator built); `sure_subjects`: the subjects the reference's walk accepts;
    `text`: the fullmatch of text every text check accepts as it is."""
    try:
        return _generate(item, tests, sure_subjects, text)
    except _NotGenerated:
        return None


def _generate(
    item: Item,
    tests: dict[str, tuple[Plain | None, Decode | None]],
    sure_subjects: frozenset[str],
    text: TextMatch,
) -> Generated:
    date_field = item.fields.get(APPLICATION_DATE)
    if (
        date_field is None
        or date_field.derived
        or item.type_of(date_field) is not FIELD_TYPES["date"]
    ):
        raise _NotGenerated
    if max((p.count(".") for p in item.fields), default=0) + 2 >= MAX_DEPTH:
        raise _NotGenerated  # values this deep hit the shape limit
    table = _table(item)
    if not set(_subject_paths(table)) <= sure_subjects:
        raise _NotGenerated  # the walk would refuse what the table takes
    w = _Writer()
    checks = {f.path: (check, normalize) for f, check, normalize in item.form_checks}
    local: dict[str, str] = {}  # form path -> the local holding its value (None: not given)
    decoded: dict[str, str] = {}  # form path -> the local holding its decoded value
    static_count = 1 + 2 * _keys(
        table
    )  # every object full: an upper bound of the reference's count
    conditional = any(f.required_when or f.absent_when for f in item.fields.values())

    w.line(0, "def generated(facts, materials, asked):")
    w.line(1, "if facts.__class__ is not dict:")
    w.line(2, "return None")
    # The as-of date first: identity numbers are checked as of it.
    app, leaf = APPLICATION_DATE.split(".")
    kapp, kleaf = w.const("k", app), w.const("k", leaf)
    w.line(1, f"a = facts.get({kapp})")
    w.line(1, f"date = a.get({kleaf}) if a.__class__ is dict else None")
    w.line(1, "if date is None:")
    w.line(2, "as_of = asked.today")
    w.line(1, "else:")
    w.line(2, "as_of = asked.day if date is asked.given else as_of_date(date)")
    w.line(2, "if as_of is None:")
    w.line(3, "return None")
    w.line(1, "values = {}")
    w.line(1, "ordered = True")
    w.line(1, "count = 0")  # values in lists: the only part of the count not bounded below
    for f in item.form_fields:
        local[f.path] = f"v{len(local)}"
        w.line(1, f"{local[f.path]} = None")
    start = len(w.lines)
    _node(w, item, table, "facts", 1, local, decoded, tests, checks, text)
    w.lines[start:start] = [f"    {e} = None" for e in decoded.values()]
    w.line(1, "if not ordered:")
    w.line(2, f"values = _in_case_order(facts, {w.const('table', table)}, values)")
    if conditional:
        w.line(1, "given = frozenset(values)")
    w.line(1, "if date is None:")
    w.line(2, f"values[{w.const('p', APPLICATION_DATE)}] = as_of.isoformat()")
    w.line(1, f"if count > {w.const('most', MAX_VALUES - static_count)}:")
    w.line(2, "return None")
    # Missing fields, in form order: refused when needed, else their default.
    for f in item.form_fields:
        needed = f.required or (f.path in item.source_backed and not f.has_default)
        if f.path == APPLICATION_DATE or not (needed or f.default is not NO_DEFAULT):
            continue
        w.line(1, f"if {local[f.path]} is None:")
        if needed:
            w.line(2, "return None")
        elif isinstance(f.default, list):
            w.line(2, f"values[{w.const('p', f.path)}] = list({w.const('d', f.default)})")
        else:
            w.line(2, f"values[{w.const('p', f.path)}] = {w.const('d', f.default)}")
    # Materials: a list or tuple of known ids, not too many.
    w.line(1, "if materials.__class__ is not list and materials.__class__ is not tuple:")
    w.line(2, "return None")
    w.line(1, f"if len(materials) > {w.const('n', MAX_MATERIALS)}:")
    w.line(2, "return None")
    w.line(1, "try:")
    w.line(2, "submitted = frozenset(materials)")
    w.line(1, "except TypeError:")
    w.line(2, "return None")
    known = frozenset(m.id for m in item.materials)
    w.line(1, f"if not submitted <= {w.const('known', known)}:")
    w.line(2, "return None")
    if conditional:
        w.names["item"] = item
        w.line(1, "unmet = []")
        w.line(1, "check_conditions(item, values, given, unmet)")
        w.line(1, "if unmet:")
        w.line(2, "return None")
    _derived(w, item, decoded)
    # Case's own __init__ sets each field through object.__setattr__ (it is frozen): the
    # same object, built in one step.
    w.line(1, "case = new(Case)")
    w.line(1, "setattr_(case, '__dict__', {'values': {**values, **derived}, 'derived': derived,")
    w.line(1, "    'materials': submitted, 'as_of': as_of})")
    w.line(1, "return case")

    namespace: dict[str, Any] = {
        "Case": Case,
        "new": object.__new__,
        "setattr_": object.__setattr__,
        "FieldViolation": FieldViolation,
        "ValueRejected": ValueRejected,
        "as_of_date": as_of_date,
        "parse_date": parse_date,
        "age_on": age_on,
        "check_conditions": check_conditions,
        "derive": derive,
        "isfinite": math.isfinite,
        "_known": _known,
        "_in_case_order": _in_case_order,
        **w.names,
    }
    source = "\n".join(w.lines) + "\n"
    code = compile(source, f"<validation of {item.code}@{item.version}>", "exec")
    exec(code, namespace)
    fn: Generated = namespace["generated"]
    fn.__doc__ = source  # what was generated, for whoever debugs it
    return fn


def _subject_paths(table: Table, prefix: str = "") -> list[str]:
    out: list[str] = []
    for key, entry in table.items():
        if isinstance(entry, dict):
            out.append(prefix + key)
            out.extend(_subject_paths(entry, f"{prefix}{key}."))
    return out


def _keys(table: Table) -> int:
    return sum(1 + (_keys(e) if isinstance(e, dict) else 0) for e in table.values())


def _node(
    w: _Writer,
    item: Item,
    table: Table,
    var: str,
    depth: int,
    local: dict[str, str],
    decoded: dict[str, str],
    tests: dict[str, tuple[Plain | None, Decode | None]],
    checks: dict[str, Any],
    text: TextMatch,
) -> None:
    """Code for one object of the case (`var`, known to be a dict): its keys in the form's
    order, then each key's value."""
    index = {key: i for i, key in enumerate(table)}
    seen = w.const("orders", {})
    w.line(depth, f"keys = tuple({var})")
    w.line(depth, f"o = {seen}.get(keys)")
    w.line(depth, "if o is None:")
    w.line(depth + 1, f"o = _known(keys, {w.const('index', index)}, {seen})")
    w.line(depth + 1, "if o is None:")
    w.line(depth + 2, "return None")
    w.line(depth, "if not o:")
    w.line(depth + 1, "ordered = False")
    for key, entry in table.items():
        k = w.const("k", key)
        if isinstance(entry, dict):
            sub = f"s{depth}"
            w.line(depth, f"{sub} = {var}.get({k})")
            w.line(depth, f"if {sub} is not None:")
            w.line(depth + 1, f"if {sub}.__class__ is not dict:")
            w.line(depth + 2, "return None")
            _node(w, item, entry, sub, depth + 1, local, decoded, tests, checks, text)
        else:
            _field(w, item, entry, f"{var}.get({k})", depth, local, decoded, tests, checks, text)


def _field(
    w: _Writer,
    item: Item,
    f: Field,
    read: str,
    depth: int,
    local: dict[str, str],
    decoded: dict[str, str],
    tests: dict[str, tuple[Plain | None, Decode | None]],
    checks: dict[str, Any],
    text: TextMatch,
) -> None:
    """Code for one form field's value: read it, test it inline (or by its decoder, or by its
    type's check), normalize it, put it in `values`."""
    v = local[f.path]
    t = item.type_of(f)
    check, normalize = checks[f.path]
    plain, decode = tests[f.path]
    shipped = t.name in FIELD_TYPES and FIELD_TYPES[t.name] is t
    p = w.const("p", f.path)
    w.line(depth, f"{v} = {read}")
    w.line(depth, f"if {v} is not None:")
    d = depth + 1
    if f.path == APPLICATION_DATE:
        pass  # the as-of date read above: a valid date
    elif shipped and t.name in ("string", "integer", "number", "boolean", "enum", "date"):
        _inline_test(w, item, f, t.name, v, d, text)
    elif decode is not None:
        decoded[f.path] = dv = f"e{len(decoded)}"
        if t.name == "resident_id" and _derives_inline(item):
            decode = resident_birth
            w.births.add(dv)
        w.line(d, f"{dv} = {w.const('decode', decode)}({v}, as_of)")
        w.line(d, f"if {dv} is None:")
        w.line(d + 1, "return None")
    else:
        if plain is not None:  # a shipped type with a cheap test (region_code)
            w.line(d, f"if not {w.const('plain', plain)}({v}):")
            w.line(d + 1, "return None")
        else:
            if shipped and t.name == "string_list":
                w.line(d, f"if {v}.__class__ is not list:")
                w.line(d + 1, "return None")
                w.line(d, f"count += len({v})")
            else:  # any other value goes through the type's check, as in Validator.plain
                _scalar_or_list(w, v, d)
            decoded[f.path] = dv = f"e{len(decoded)}"
            w.line(d, "try:")
            w.line(d + 1, f"{dv} = {w.const('check', check)}({w.const('f', f)}, {v}, as_of)")
            w.line(d, "except ValueRejected:")
            w.line(d + 1, "return None")
    if normalize is not None:
        w.line(d, f"values[{p}] = {w.const('norm', normalize)}({v})")
    else:
        w.line(d, f"values[{p}] = {v}")


def _scalar_or_list(w: _Writer, v: str, depth: int) -> None:
    """What the reference's walk takes as one value without looking inside: a scalar or a list
    of scalars (objects, and lists holding containers, are left to it)."""
    w.line(depth, f"if {v}.__class__ is dict:")
    w.line(depth + 1, "return None")
    w.line(depth, f"if isinstance({v}, list):")
    w.line(depth + 1, f"if any(isinstance(x, dict | list) for x in {v}):")
    w.line(depth + 2, "return None")
    w.line(depth + 1, f"count += len({v})")


def _inline_test(
    w: _Writer, item: Item, f: Field, kind: str, v: str, depth: int, text: TextMatch
) -> None:
    """The cheap test of a shipped type, written out; a value it does not pass is left to
    Validator.plain (which asks the type's check)."""
    fail = f"{depth * '    '}    return None"
    if kind == "string":
        lo = w.const("lo", max(f.min_length, 1))
        hi = w.const("hi", min(f.max_length or MAX_STRING, MAX_STRING))
        match = w.const("text", text)
        w.line(depth, f"if {v}.__class__ is not str or not {lo} <= len({v}) <= {hi}:")
        w.lines.append(fail)
        w.line(depth, f"if {match}({v}) is None:")
    elif kind in ("integer", "number"):
        cond = [f"-{w.const('big', MAX_NUMBER)} <= {v} <= {w.const('big', MAX_NUMBER)}"]
        if f.minimum is not None:
            lo = w.const("lo", f.minimum)
            cond.append(f"{v} > {lo}" if f.exclusive_min else f"{v} >= {lo}")
        if f.maximum is not None:
            cond.append(f"{v} <= {w.const('hi', f.maximum)}")
        whole = " and " + f"{v}.is_integer()" if kind == "integer" else ""
        w.line(depth, f"if {v}.__class__ is float:")
        w.line(depth + 1, f"if not (isfinite({v}){whole}):")
        w.lines.append("    " + fail)
        w.line(depth, f"elif {v}.__class__ is not int:")
        w.lines.append(fail)
        w.line(depth, f"if not ({' and '.join(cond)}):")
    elif kind == "boolean":
        w.line(depth, f"if {v} is not True and {v} is not False:")
    elif kind == "enum":
        t = item.type_of(f)
        accepted = frozenset(x for x in f.enum_values if t.problem(f, x) is None)
        w.line(depth, f"if {v}.__class__ is not str or {v} not in {w.const('enum', accepted)}:")
    else:  # date
        w.line(depth, f"if {v}.__class__ is not str or parse_date({v}) is None:")
    w.lines.append(fail)


def _derives_inline(item: Item) -> bool:
    return not item.computed and all(f.derive in _INLINE_DERIVE for f in item.derived_fields)


def _derived(w: _Writer, item: Item, decoded: dict[str, str]) -> None:
    """Derived facts as `derive` makes them: by function from a decoded identity number, in
    file order; computed ones (or a function written elsewhere) through `derive` itself."""
    fields = item.derived_fields
    if not fields:
        w.line(1, "derived = {}")
        return
    if not _derives_inline(item):
        w.names["item"] = item
        pairs = ", ".join(f"{w.const('p', p)}: {e}" for p, e in decoded.items())
        w.line(1, f"parsed = {{{pairs}}}")
        w.line(1, "parsed = {k: e for k, e in parsed.items() if e is not None}")
        w.line(1, "derived = derive(item, parsed, as_of, values)")
        return
    w.line(1, "derived = {}")
    for f in fields:
        source = decoded.get(f.derive_from or "")
        if source is None:
            continue  # not decoded here: `derive` finds nothing for it either
        p = w.const("p", f.path)
        w.line(1, f"if {source} is not None:")
        birth = source if source in w.births else f"{source}.birth_date"
        if f.derive == "age":
            w.line(2, f"derived[{p}] = age_on({birth}, as_of)")
        elif f.derive == "birth_date":
            w.line(2, f"derived[{p}] = {birth}.isoformat()")
        elif f.derive == "credit_code_checksum_ok":
            w.line(2, f"derived[{p}] = {source}.checksum_ok")
        else:
            w.line(2, f"derived[{p}] = {source}.kind")
