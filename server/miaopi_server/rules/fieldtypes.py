"""Every form field type, each declared once: its value check, how the condition language
compares it, its protobuf enum name, its rule-file schema entry and its docs line.

The rest of the server reads this list: the loader (which `type:` names exist, which keys a
type accepts, checking defaults), validation (checking and normalizing case values), the rule
compiler (how conditions compare a fact) and the gRPC edge (the FieldType enum value).
tests/test_fieldtypes.py checks rulefile.schema.json, docs/RULES.md and the proto enum
against it. Adding a field type is one `FieldType(...)` below plus its tests.

A `FieldTypes` registry is a plain value (tests build one with extra types). `load_rule_file`
takes one, checks every `type:` against it and keeps it on the Item, so compiling and
validating that item use the same types. Looking up a name a registry does not hold raises
`UnknownFieldType`; nothing falls back to "any text".
"""

from __future__ import annotations

import datetime as dt
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from miaopi_server.lang.compiler import Compares
from miaopi_server.rules.identity import (
    IdentityError,
    check_region_code,
    parse_credit_code,
    parse_resident_id,
)

if TYPE_CHECKING:
    from miaopi_server.rules.model import Field

MAX_STRING = 1000  # characters; far above any form's own limits, bounds the work per field
# The type-specific keys a rule file may give a field; each type says which apply to it.
OPTIONS = ("min", "max", "exclusive_min", "min_length", "max_length", "min_items", "values")


class ValueRejected(ValueError):
    """A value a field cannot take; the message (Chinese) is shown to whoever sent it."""


class UnknownFieldType(LookupError):
    """A field type name that is not registered (a defect: rule files are checked at load)."""


Check = Callable[["Field", Any, dt.date], Any]


def unchanged(value: Any) -> Any:
    """The normalisation of a type whose accepted values are used as given."""
    return value


@dataclass(frozen=True)
class FieldType:
    """One field type. `check(field, value, as_of)` raises ValueRejected saying what is wrong,
    or returns what derived facts are computed from (a decoded identity number; else None).
    `normalize` gives the form an accepted value takes in the case (e.g. 3.0 -> 3)."""

    name: str
    compares: Compares  # what the condition language can do with such a fact
    pb_name: str  # the miaopi.v1.FieldType value, e.g. "FIELD_TYPE_STRING"
    value_schema: Mapping[str, Any]  # JSON Schema of one value (checks rule-file defaults)
    options: tuple[str, ...]  # the type-specific keys (of OPTIONS) this type accepts
    doc: str  # "中文 / English": the schema's enumDescriptions and the docs/RULES.md row
    check: Check = field(repr=False)
    normalize: Callable[[Any], Any] = field(default=unchanged, repr=False)

    def __post_init__(self) -> None:
        unknown = set(self.options) - set(OPTIONS)
        if unknown:
            raise ValueError(f"field type {self.name}: unknown options {sorted(unknown)}")

    def problem(self, f: Field, value: Any, as_of: dt.date = dt.date.max) -> str | None:
        """None when `value` is acceptable for `f`, else why not (for rule-file defaults)."""
        try:
            self.check(f, value, as_of)
        except ValueRejected as exc:
            return str(exc)
        return None


class FieldTypes:
    """An ordered registry of field types by name (the order is the one users see)."""

    def __init__(self, types: Iterable[FieldType]):
        self._types: dict[str, FieldType] = {}
        for t in types:
            if t.name in self._types:
                raise ValueError(f"field type {t.name} registered twice")
            self._types[t.name] = t

    def __getitem__(self, name: str) -> FieldType:
        try:
            return self._types[name]
        except KeyError:
            known = ", ".join(self.names)
            raise UnknownFieldType(f"no field type {name!r} (known: {known})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __iter__(self) -> Iterator[FieldType]:
        return iter(self._types.values())

    def __len__(self) -> int:
        return len(self._types)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._types)

    def accepting(self, option: str) -> tuple[str, ...]:
        """The names of the types that accept a type-specific key, e.g. "min"."""
        if option not in OPTIONS:
            raise ValueError(f"unknown field option {option!r}")
        return tuple(t.name for t in self if option in t.options)

    def extended(self, *types: FieldType) -> FieldTypes:
        """A new registry with these types added after the existing ones."""
        return FieldTypes([*self, *types])


# -- the application date, and every date a rule file or case gives --------------------------

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_date(text: str) -> dt.date | None:
    """A calendar date written exactly YYYY-MM-DD (ASCII digits), else None."""
    if not _DATE.fullmatch(text):
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


# The as-of dates a case may ask for (its application.date; today when it gives none). Wide
# enough for any real application and for replaying any historical rule version, and far
# enough from datetime.date.max that a review due date (at most MAX_TIME_LIMIT_DAYS working
# days later) is always a date. Outside 2004..the latest year the State Council has published
# the working-day calendar is Monday-Friday, flagged as estimated (decision/workdays.py).
EARLIEST_AS_OF = dt.date(1900, 1, 1)
LATEST_AS_OF = dt.date(2199, 12, 31)
# The longest time limit (法定/承诺办结时限) a rule file may give, in working days: about four
# years, beyond any statute; it also bounds the work of computing a due date.
MAX_TIME_LIMIT_DAYS = 1000


def as_of_date(value: Any) -> dt.date | None:
    """The as-of date an application.date value asks for: a YYYY-MM-DD string within
    EARLIEST_AS_OF..LATEST_AS_OF, else None (validation says which of these it is not)."""
    day = parse_date(value) if isinstance(value, str) else None
    return day if day is not None and EARLIEST_AS_OF <= day <= LATEST_AS_OF else None


def as_of_problem(value: Any) -> str | None:
    """Why a valid date cannot be an as-of date (None when it can, or is not a date at all:
    the date field's own check reports that)."""
    day = parse_date(value) if isinstance(value, str) else None
    if day is not None and not EARLIEST_AS_OF <= day <= LATEST_AS_OF:
        return f"应在 {EARLIEST_AS_OF} 至 {LATEST_AS_OF} 之间"
    return None


# -- checks shared by several types ------------------------------------------------------------

# Control characters (Cc), lone surrogates (Cs) and private-use code points (Co).
_BAD_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ue000-\uf8ff\U000f0000-\U0010ffff]")


# Invisible characters that change how text reads without being seen: format characters (Cf:
# U+200B zero width space, U+202E right-to-left override, U+FEFF, ...) and the line and
# paragraph separators (Zl U+2028, Zp U+2029). A name holding one looks like another name.
_INVISIBLE = frozenset({"Cf", "Zl", "Zp"})


def _bad_text(value: str) -> str | None:
    if len(value) > MAX_STRING:
        return f"过长（不超过 {MAX_STRING} 字）"
    if _BAD_CHARS.search(value):
        return "含有控制字符或无效字符"
    if not value.isprintable():  # fast path: printable text has none of them
        for ch in value:
            if unicodedata.category(ch) in _INVISIBLE:
                return f"含有不可见的格式字符或分隔符（U+{ord(ch):04X}）"
    return None


def _blank(value: str) -> str | None:
    """Text that is there but shows nothing: only spaces (incl. U+3000 全角空格)."""
    return "不能只有空白字符" if value and value.isspace() else None


def _text(value: Any) -> str:
    """Any text-valued type first: a string of sane length and characters."""
    if not isinstance(value, str):
        raise ValueRejected("应为文字")
    problem = _bad_text(value)
    if problem:
        raise ValueRejected(problem)
    return value


def _length(f: Field, value: str, at_least: int) -> str | None:
    if len(value) < max(f.min_length, at_least):
        return "不能为空"
    if f.max_length and len(value) > f.max_length:
        return f"不超过 {f.max_length} 字"
    return None


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _number(f: Field, value: Any, whole: bool) -> None:
    if not (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ):
        raise ValueRejected("应为数字")
    if whole and not float(value).is_integer():
        raise ValueRejected("应为整数")
    if f.minimum is not None and (value < f.minimum or (f.exclusive_min and value == f.minimum)):
        raise ValueRejected(f"应{'大于' if f.exclusive_min else '不小于'} {_num(f.minimum)}")
    if f.maximum is not None and value > f.maximum:
        raise ValueRejected(f"应不大于 {_num(f.maximum)}")


def _identity(parse: Callable[[], Any]) -> Any:
    try:
        return parse()
    except IdentityError as exc:
        raise ValueRejected(str(exc)) from None


# -- the checks of each type -------------------------------------------------------------------


def _check_string(f: Field, value: Any, as_of: dt.date) -> None:
    text = _text(value)
    problem = _blank(text) or _length(f, text, at_least=1)
    if problem:
        raise ValueRejected(problem)


def _check_integer(f: Field, value: Any, as_of: dt.date) -> None:
    _number(f, value, whole=True)


def _check_number(f: Field, value: Any, as_of: dt.date) -> None:
    _number(f, value, whole=False)


def _check_boolean(f: Field, value: Any, as_of: dt.date) -> None:
    if not isinstance(value, bool):
        raise ValueRejected("应为 true 或 false")


def _check_date(f: Field, value: Any, as_of: dt.date) -> None:
    if parse_date(_text(value)) is None:
        raise ValueRejected("应为有效日期 YYYY-MM-DD")


def _check_enum(f: Field, value: Any, as_of: dt.date) -> None:
    if _text(value) not in f.enum_values:
        raise ValueRejected("应为以下之一：" + "、".join(f"{v}（{label}）" for v, label in f.enum))


def _check_string_list(f: Field, value: Any, as_of: dt.date) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueRejected("应为文字列表")
    if len(value) < f.min_items:
        raise ValueRejected(f"至少填写 {f.min_items} 项")
    if len(value) > MAX_STRING:
        raise ValueRejected("项数过多")
    for i, v in enumerate(value, 1):
        problem = _bad_text(v) or _blank(v) or _length(f, v, at_least=0)
        if problem:
            raise ValueRejected(f"第 {i} 项{problem}")


def _check_region_code(f: Field, value: Any, as_of: dt.date) -> None:
    text = _text(value)
    _identity(lambda: check_region_code(text))


def _check_resident_id(f: Field, value: Any, as_of: dt.date) -> Any:
    text = _text(value)
    return _identity(lambda: parse_resident_id(text, as_of))


def _check_credit_code(f: Field, value: Any, as_of: dt.date) -> Any:
    text = _text(value)
    return _identity(lambda: parse_credit_code(text))


def _whole_number(value: Any) -> Any:
    return int(value) if float(value).is_integer() else value


_TEXT_SCHEMA: Mapping[str, Any] = {"type": "string"}

FIELD_TYPES = FieldTypes(
    [
        FieldType(
            name="string",
            compares=Compares.TEXT,
            pb_name="FIELD_TYPE_STRING",
            value_schema=_TEXT_SCHEMA,
            options=("min_length", "max_length"),
            doc="文字（min_length、max_length） / text",
            check=_check_string,
        ),
        FieldType(
            name="integer",
            compares=Compares.NUMBER,
            pb_name="FIELD_TYPE_INTEGER",
            value_schema={"type": "integer"},
            options=("min", "max", "exclusive_min"),
            doc="整数（min、max、exclusive_min） / integer",
            check=_check_integer,
            normalize=int,
        ),
        FieldType(
            name="number",
            compares=Compares.NUMBER,
            pb_name="FIELD_TYPE_NUMBER",
            value_schema={"type": "number"},
            options=("min", "max", "exclusive_min"),
            doc="数字（min、max、exclusive_min） / number",
            check=_check_number,
            normalize=_whole_number,
        ),
        FieldType(
            name="boolean",
            compares=Compares.BOOLEAN,
            pb_name="FIELD_TYPE_BOOLEAN",
            value_schema={"type": "boolean"},
            options=(),
            doc="是/否 / yes-no",
            check=_check_boolean,
        ),
        FieldType(
            name="date",
            compares=Compares.DATE,
            pb_name="FIELD_TYPE_DATE",
            value_schema=_TEXT_SCHEMA,
            options=(),
            doc="日期 YYYY-MM-DD / date",
            check=_check_date,
        ),
        FieldType(
            name="enum",
            compares=Compares.CHOICE,
            pb_name="FIELD_TYPE_ENUM",
            value_schema=_TEXT_SCHEMA,
            options=("values",),
            doc="枚举，须以 values 列出可选值 / one of `values`",
            check=_check_enum,
        ),
        FieldType(
            name="string_list",
            compares=Compares.TEXT_LIST,
            pb_name="FIELD_TYPE_STRING_LIST",
            value_schema={"type": "array", "items": {"type": "string"}},
            options=("min_length", "max_length", "min_items"),
            doc="文字列表，未填即空列表（min_items） / list of text, empty when omitted",
            check=_check_string_list,
        ),
        FieldType(
            name="region_code",
            compares=Compares.TEXT,
            pb_name="FIELD_TYPE_REGION_CODE",
            value_schema=_TEXT_SCHEMA,
            options=(),
            doc="行政区划代码（GB/T 2260） / region code",
            check=_check_region_code,
        ),
        FieldType(
            name="resident_id",
            compares=Compares.TEXT,
            pb_name="FIELD_TYPE_RESIDENT_ID",
            value_schema=_TEXT_SCHEMA,
            options=(),
            doc="公民身份号码（GB 11643），校验位与出生日期都会检查 / resident ID number",
            check=_check_resident_id,
        ),
        FieldType(
            name="credit_code",
            compares=Compares.TEXT,
            pb_name="FIELD_TYPE_CREDIT_CODE",
            value_schema=_TEXT_SCHEMA,
            options=(),
            doc="统一社会信用代码（GB 32100） / unified social credit code",
            check=_check_credit_code,
        ),
    ]
)
