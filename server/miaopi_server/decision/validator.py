"""An item's validation, built once when the item is loaded: the fast path of every decision.

`validate.validate_case` is the reference: it walks the case generically and knows every
message. Most cases a window sends are plainly valid, and for those nearly all of its work is
generic: looking up each key's field, dispatching each value to its type's check, counting
values against the shape limits. A `Validator` does that lookup and dispatch once, at load,
and keeps per field a cheap test that accepts only values the type's own check accepts.

It accepts a case only when it is sure; anything else (an unknown key, a value its cheap test
and its type's check refuse, a violated condition, an unknown material) goes to
`validate_case`, so every refusal, and every message in it, comes from the one reference. What
it accepts it returns exactly as `validate_case` would (same values in the same order, derived
facts, materials, as-of date): tests/test_validator.py checks both on generated cases.
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
    validate_case,
)
from miaopi_server.decision.validator_code import Generated, generate
from miaopi_server.errors import FieldViolation
from miaopi_server.lang.parser import MAX_NUMBER
from miaopi_server.rules.fieldtypes import (
    FIELD_TYPES,
    MAX_STRING,
    FieldType,
    ValueRejected,
    as_of_date,
    parse_date,
)
from miaopi_server.rules.identity import IdentityError, parse_credit_code, parse_resident_id
from miaopi_server.rules.model import APPLICATION_DATE, NO_DEFAULT, Field, Item

# A test that is True only for values the field's type check accepts (False: ask the check).
Plain = Callable[[Any], bool]
# The decoded identity number a field's derived facts need; None: not sure, ask the check.
Decode = Callable[[Any, dt.date], Any]
# A subject's keys: a form field's path (str) or the nested subject's own table.
Table = dict[str, "str | Table"]

# Text every text check accepts as it is: starts with a letter, digit or CJK ideograph (so it
# is visible and not blank), holds only printable ASCII, CJK ideographs and common CJK
# punctuation, and does not end with a space. Other text is not wrong, just left to the check.
_WORD = "0-9A-Za-z\u3400-\u4dbf\u4e00-\u9fff"
_MARKS = "\u00b7\u3001\u3002\uff08\uff09\uff0c"  # ·、。（），
_PLAIN_TEXT = re.compile(f"[{_WORD}](?:[ -~{_WORD}{_MARKS}]*[!-~{_WORD}{_MARKS}])?")


def _number_test(f: Field, whole: bool) -> Plain:
    lo, hi, exclusive = f.minimum, f.maximum, f.exclusive_min

    def plain(v: Any) -> bool:
        t = v.__class__
        if t is float:
            if not (math.isfinite(v) and (not whole or v.is_integer())):
                return False
        elif t is not int:
            return False
        if not -MAX_NUMBER <= v <= MAX_NUMBER:
            return False
        if lo is not None and (v < lo or (exclusive and v == lo)):
            return False
        return hi is None or v <= hi

    return plain


def _string_test(f: Field) -> Plain:
    shortest = max(f.min_length, 1)
    longest = min(f.max_length or MAX_STRING, MAX_STRING)
    match = _PLAIN_TEXT.fullmatch
    return lambda v: v.__class__ is str and shortest <= len(v) <= longest and match(v) is not None


def _region_test(t: FieldType, f: Field) -> Plain:
    provinces = frozenset(
        p for p in (f"{i:02d}" for i in range(100)) if t.problem(f, p + "0000") is None
    )
    return lambda v: (
        v.__class__ is str and len(v) == 6 and v.isascii() and v.isdigit() and v[:2] in provinces
    )


def _plain_test(t: FieldType, f: Field) -> Plain | None:
    """The cheap test for a field of a shipped type; None: always ask the type's check (a
    type registered elsewhere, or one whose check returns what derived facts need)."""
    if t.name not in FIELD_TYPES or FIELD_TYPES[t.name] is not t:
        return None
    if t.name == "string":
        return _string_test(f)
    if t.name in ("integer", "number"):
        return _number_test(f, whole=t.name == "integer")
    if t.name == "boolean":
        return lambda v: v is True or v is False
    if t.name == "date":
        return lambda v: v.__class__ is str and parse_date(v) is not None
    if t.name == "enum":
        accepted = frozenset(v for v in f.enum_values if t.problem(f, v) is None)
        return lambda v: v.__class__ is str and v in accepted
    if t.name == "region_code":
        return _region_test(t, f)
    return None  # string_list, resident_id, credit_code: their check is the test


def _resident_id(v: Any, as_of: dt.date) -> Any:
    # Printable ASCII passes the type's text checks, so the check is the parser itself.
    if v.__class__ is str and v.isascii() and v.isprintable():
        try:
            return parse_resident_id(v, as_of)
        except IdentityError:
            return None
    return None


def _credit_code(v: Any, as_of: dt.date) -> Any:
    if v.__class__ is str and v.isascii() and v.isprintable():
        try:
            return parse_credit_code(v)
        except IdentityError:
            return None
    return None


def _decoder(t: FieldType) -> Decode | None:
    """For a shipped identity type: its decoded number straight from the parser, or None
    when not sure (then the type's check runs and says what is wrong)."""
    if t.name not in FIELD_TYPES or FIELD_TYPES[t.name] is not t:
        return None
    return {"resident_id": _resident_id, "credit_code": _credit_code}.get(t.name)


class Validator:
    """`validator(facts, materials, as_of)`: the Case validate_case returns, or its CaseInvalid."""

    def __init__(self, item: Item):
        self.item = item
        self._table: Table = {}
        checks = []
        tests: dict[str, tuple[Plain | None, Decode | None]] = {}
        for f, check, normalize in item.form_checks:
            t = item.type_of(f)
            node = self._table
            *parents, leaf = f.path.split(".")
            for p in parents:
                node = node.setdefault(p, {})  # type: ignore[assignment]
            node[leaf] = f.path
            needed = f.required or (f.path in item.source_backed and not f.has_default)
            # A valid as-of date is a valid date: the date type's check need not run again.
            as_of_field = f.path == APPLICATION_DATE and t is FIELD_TYPES["date"]
            plain, decode = _plain_test(t, f), _decoder(t)
            tests[f.path] = (plain, decode)
            checks.append((f, check, plain, decode, normalize, needed, as_of_field))
        self._checks = tuple(checks)
        for f in item.fields.values():  # derived fields are refused as input: the reference says so
            if f.derived:
                node = self._table
                for p in f.path.split(".")[:-1]:
                    node = node.setdefault(p, {})  # type: ignore[assignment]
                node.pop(f.path.rsplit(".", 1)[-1], None)
        self._materials = frozenset(m.id for m in item.materials)
        self._conditional = any(f.required_when or f.absent_when for f in item.fields.values())
        # Values nested this deep hit the shape limit: leave such items to the reference.
        deepest = max((p.count(".") for p in item.fields), default=0) + 2
        self._fast = deepest < MAX_DEPTH
        # The plain case as straight-line code (decision/validator_code.py), written on the
        # item's first case, not at load: compiling it was a fifth of loading a large
        # catalog, most of whose items see no case for a long while.
        self._tests = tests
        self._unwritten = self._fast
        self._generated: Generated | None = None

    @property
    def generated(self) -> Generated | None:
        """The item's generated code (written now if not yet); None: the item has something
        it does not write code for."""
        if self._unwritten:
            self._generated = generate(
                self.item, self._tests, self.item.subjects, _PLAIN_TEXT.fullmatch
            )
            self._unwritten = False
        return self._generated

    def __call__(self, facts: Any, materials: Any, as_of: AsOf) -> Case:
        generated = self.generated if self._unwritten else self._generated
        case = generated(facts, materials, as_of) if generated is not None else None
        if case is None and self._fast:
            case = self.plain(facts, materials, as_of)
        return case or validate_case(self.item, facts, materials, as_of.today)

    def plain(self, facts: Any, materials: Any, asked: AsOf) -> Case | None:
        """The case, if it is plainly valid; None: let the reference judge it."""
        if facts.__class__ is not dict:
            return None
        values: dict[str, Any] = {}
        count = _walk(facts, self._table, values)
        if count < 0 or count > MAX_VALUES:
            return None
        if materials.__class__ is not list and materials.__class__ is not tuple:
            return None
        if len(materials) > MAX_MATERIALS:
            return None
        try:
            submitted = frozenset(materials)
        except TypeError:  # an unhashable entry: not a material id
            return None
        if not submitted <= self._materials:
            return None
        given = frozenset(values) if self._conditional else frozenset()

        date = values.get(APPLICATION_DATE)
        if date is None:
            as_of = asked.today
            values[APPLICATION_DATE] = as_of.isoformat()
        else:
            day = asked.day if date is asked.given else as_of_date(date)
            if day is None:  # not a valid as-of date: the reference says why
                return None
            as_of = day

        parsed: dict[str, Any] = {}
        for f, check, plain, decode, normalize, needed, as_of_field in self._checks:
            path = f.path
            if path in values:
                value = values[path]
                # A valid as-of date needs no second look; a plain value none at all.
                sure = (as_of_field and date is not None) or (plain is not None and plain(value))
                if not sure:
                    decoded = decode(value, as_of) if decode is not None else None
                    if decoded is None:
                        try:
                            decoded = check(f, value, as_of)
                        except ValueRejected:
                            return None
                    if decoded is not None:
                        parsed[path] = decoded
                if normalize is not None:
                    values[path] = normalize(value)
            elif needed:
                return None
            elif f.default is not NO_DEFAULT:
                default = f.default
                values[path] = list(default) if isinstance(default, list) else default

        if self._conditional:
            unmet: list[FieldViolation] = []
            check_conditions(self.item, values, given, unmet)
            if unmet:
                return None
        derived = derive(self.item, parsed, as_of, values)
        return Case({**values, **derived}, derived, submitted, as_of)


def _walk(node: dict[Any, Any], table: Table, out: dict[str, Any]) -> int:
    """Flatten `node` into `out` by its form paths; the values it counts towards MAX_VALUES
    (as the reference counts them), or -1 at anything the form does not plainly hold."""
    count = 1 + 2 * len(node)
    for key, value in node.items():
        entry = table.get(key)
        if entry is None:
            return -1
        if entry.__class__ is str:
            kind = value.__class__
            if kind is str or kind is bool or kind is int or kind is float:
                out[entry] = value
                continue
            if value is None:
                continue
            if isinstance(value, list):
                if any(isinstance(v, dict | list) for v in value):
                    return -1
                count += len(value)
            elif isinstance(value, dict):
                return -1
            out[entry] = value
        elif value is not None:
            if value.__class__ is not dict:
                return -1
            inner = _walk(value, entry, out)  # type: ignore[arg-type]
            if inner < 0:
                return -1
            count += inner - 1
    return count
