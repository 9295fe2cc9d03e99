"""Generated sample cases for any item, built from its form: what the rule-set gate
(ops/gate.py) decides in a throw-away process before a set goes live.

Every field type gets values its check accepts, steered towards the constants the item's
conditions compare with (a number and its neighbours, a date and the days around it, list
members, the words of `contains` / `starts with`, the ages and credit-code kinds that derived
facts are tested against), so that most rules are exercised on both sides of their edges.
Optional fields are sometimes left out (defaults apply), materials are sometimes missing.
Deterministic for a given `random.Random`. A value a field would refuse (e.g. a form whose
limits leave nothing to choose) makes that case invalid; the gate counts such cases, it does
not fail on them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from miaopi_server.lang import ast
from miaopi_server.rules.identity import credit_code_check_char, resident_id_check_char
from miaopi_server.rules.model import APPLICATION_DATE, Condition, Field, Item

Sample = tuple[dict[str, Any], list[str]]  # (facts, materials) as a window would send them

# Plain pieces text is built from besides the item's own words: CJK, ASCII, region prefixes.
_PIECES = ("南海区", "佛山市南海区", "店", "中国", "服务", "陈建国", "x", "A", "1")
_REGIONS = ("440605", "440604", "440103", "110101", "310115", "510107")
_CREDIT_KINDS = ("91", "92", "93", "11", "51", "52")
_CREDIT_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_MAX_MAGNITUDE = 1e6  # generated numbers stay in plain decimal notation
_EARLIEST = dt.date(1900, 1, 1)
_LATEST = dt.date(2199, 12, 31)


@dataclass
class Hints:
    """The constants an item's conditions use, by the fact path they are compared with."""

    values: dict[str, list[Any]] = field(default_factory=dict)

    def add(self, path: str, value: Any) -> None:
        known = self.values.setdefault(path, [])
        if value not in known and len(known) < 64:  # a few are enough to find the edges
            known.append(value)

    def of(self, path: str) -> list[Any]:
        return self.values.get(path, [])


def conditions_of(item: Item) -> Iterator[Condition]:
    """Every condition of the item: rules, output cases, materials' `when`."""
    for rule in item.rules:
        yield rule.when
        for _, cases in rule.outputs:
            yield from (c.when for c in cases if c.when is not None)
    yield from (m.when for m in item.materials if m.when is not None)


def hints_of(item: Item) -> Hints:
    hints = Hints()

    def values(vs: ast.ValueSet) -> tuple[Any, ...]:
        if isinstance(vs, ast.ListLiteral):
            return tuple(c.value for c in vs.items)
        return item.lists.get(vs.name, ())

    def visit(n: ast.Expr, element_of: str | None = None) -> None:
        def subject(s: object) -> str | None:
            if isinstance(s, ast.Path):
                return s.name
            return element_of if isinstance(s, ast.Element) else None

        if isinstance(n, ast.And | ast.Or):
            for o in n.operands:
                visit(o, element_of)
        elif isinstance(n, ast.Not):
            visit(n.operand, element_of)
        elif isinstance(n, ast.Quantified):
            visit(n.test, n.subject.name)
        elif isinstance(n, ast.Compare):
            for this, other in ((n.left, n.right), (n.right, n.left)):
                path = subject(this)
                if path is not None and isinstance(other, ast.Const):
                    hints.add(path, other.value)
        elif isinstance(n, ast.Member):
            path = subject(n.subject)
            if path is not None:
                for v in values(n.values):
                    hints.add(path, v)
        elif isinstance(n, ast.StringTest):
            path = subject(n.subject)
            if path is not None:
                for w in values(n.words):
                    hints.add(path, w)

    for cond in conditions_of(item):
        visit(cond.tree)
    return hints


class _Maker:
    """Values for one item's fields; one instance per item."""

    def __init__(self, item: Item, rng: random.Random):
        self.item = item
        self.rng = rng
        self.hints = hints_of(item)
        # Derived facts steer the identity number they are computed from.
        self.derived_by_source: dict[str, list[Field]] = {}
        for f in item.derived_fields:
            self.derived_by_source.setdefault(f.derive_from, []).append(f)
        self.makers: dict[str, Callable[[Field, dt.date], Any]] = {
            "string": self.string,
            "integer": lambda f, as_of: self.number(f, whole=True),
            "number": lambda f, as_of: self.number(f, whole=False),
            "boolean": lambda f, as_of: self.rng.random() < 0.5,
            "date": self.date,
            "enum": lambda f, as_of: self.rng.choice(f.enum_values) if f.enum else None,
            "string_list": self.string_list,
            "region_code": self.region_code,
            "resident_id": self.resident_id,
            "credit_code": self.credit_code,
        }

    def text_hint(self, path: str) -> str | None:
        h = self.hint(path, str)
        return h if isinstance(h, str) else None

    def hint(self, path: str, kind: type | tuple[type, ...]) -> Any:
        """One of the constants compared with `path` of Python type `kind`, or None."""
        found = [
            v
            for v in self.hints.of(path)
            if isinstance(v, kind) and not (isinstance(v, bool) and bool not in (kind,))
        ]
        return self.rng.choice(found) if found and self.rng.random() < 0.75 else None

    # -- text --------------------------------------------------------------------------------

    def text(self, path: str, min_length: int, max_length: int) -> str:
        h = self.text_hint(path)
        if h is not None and self.rng.random() < 0.4:
            value = h
        else:
            words = [w for w in self.hints.of(path) if isinstance(w, str)]
            pool = words + list(_PIECES) if words else list(_PIECES)
            value = "".join(self.rng.choice(pool) for _ in range(self.rng.randint(1, 3)))
        if max_length and len(value) > max_length:
            value = value[:max_length]
        return value + "字" * max(0, max(min_length, 1) - len(value))

    def string(self, f: Field, as_of: dt.date) -> str:
        return self.text(f.path, f.min_length, f.max_length)

    def string_list(self, f: Field, as_of: dt.date) -> list[str]:
        count = max(f.min_items, self.rng.choice((0, 1, 1, 2, 3)))
        return [self.text(f.path, f.min_length, f.max_length) for _ in range(count)]

    # -- numbers and dates -------------------------------------------------------------------

    def number(self, f: Field, whole: bool) -> int | float:
        lo = f.minimum if f.minimum is not None else min(-10.0, f.maximum or 0.0)
        hi = f.maximum if f.maximum is not None else max(1000.0, lo + 1000.0)
        lo, hi = max(lo, -_MAX_MAGNITUDE), min(hi, _MAX_MAGNITUDE)
        h = self.hint(f.path, (int, float))
        if h is not None and abs(h) < _MAX_MAGNITUDE:
            step = 1 if whole else self.rng.choice((1, 0.5))
            value: float = h + self.rng.choice((-step, 0, 0, step))
        else:
            value = self.rng.uniform(lo, hi) if hi >= lo else lo
        value = min(max(value, lo), hi)
        if f.exclusive_min and f.minimum is not None and value <= f.minimum:
            value = f.minimum + 1
        if whole or float(value).is_integer():
            return round(value) if whole else int(value)
        return round(value, 2) if abs(value) >= 0.01 else 0

    def day(self, path: str, around: dt.date) -> dt.date:
        h = self.text_hint(path)
        base = around
        if h is not None:
            with contextlib.suppress(ValueError):
                base = dt.date.fromisoformat(h)
            shift = self.rng.choice((-1, 0, 0, 1))
        else:
            shift = self.rng.randint(-3 * 365, 3 * 365)
        return min(max(base + dt.timedelta(days=shift), _EARLIEST), _LATEST)

    def date(self, f: Field, as_of: dt.date) -> str:
        return self.day(f.path, as_of).isoformat()

    # -- identity numbers ----------------------------------------------------------------------

    def region_code(self, f: Field, as_of: dt.date) -> str:
        h = self.text_hint(f.path)
        if h is not None and len(h) == 6 and h.isascii() and h.isdigit():
            return h
        return self.rng.choice(_REGIONS)

    def birth(self, source: str, as_of: dt.date) -> dt.date:
        """A birth date that puts the derived facts of `source` near their tested edges."""
        for d in self.derived_by_source.get(source, []):
            if d.derive == "age":
                age = self.hint(d.path, int)
                if age is not None and 0 <= age + 1 <= as_of.year - _EARLIEST.year:
                    years = max(age + self.rng.choice((-1, 0, 0, 1)), 0)
                    try:
                        born = as_of.replace(year=as_of.year - years)
                    except ValueError:  # 29 February
                        born = dt.date(as_of.year - years, 3, 1)
                    return min(born + dt.timedelta(days=self.rng.choice((0, 1))), as_of)
            if d.derive == "birth_date":
                born = self.day(d.path, as_of)
                if born <= as_of:
                    return born
        return max(as_of - dt.timedelta(days=self.rng.randint(0, 110 * 365)), _EARLIEST)

    def resident_id(self, f: Field, as_of: dt.date) -> str:
        born = self.birth(f.path, as_of)
        region = self.rng.choice(_REGIONS)
        first17 = f"{region}{born:%Y%m%d}{self.rng.randrange(1000):03d}"
        return first17 + resident_id_check_char(first17)

    def credit_code(self, f: Field, as_of: dt.date) -> str:
        kind = None
        for d in self.derived_by_source.get(f.path, []):
            if d.derive == "credit_code_kind":
                kind = self.text_hint(d.path)
        if not (kind and len(kind) == 2 and all(c in _CREDIT_ALPHABET for c in kind)):
            kind = self.rng.choice(_CREDIT_KINDS)
        body = kind + self.rng.choice(_REGIONS)
        body += "".join(self.rng.choice(_CREDIT_ALPHABET) for _ in range(9))
        check = credit_code_check_char(body)
        if self.rng.random() < 0.1:  # a wrong check character is valid input (checksum_ok)
            check = self.rng.choice([c for c in _CREDIT_ALPHABET if c != check])
        return body + check

    # -- a whole case --------------------------------------------------------------------------

    def as_of(self) -> dt.date:
        item = self.item
        start = item.effective_from or dt.date(2024, 1, 1)
        end = item.effective_until or start + dt.timedelta(days=3 * 365)
        h = self.text_hint(APPLICATION_DATE)
        if h is not None:
            try:
                day = dt.date.fromisoformat(h) + dt.timedelta(days=self.rng.choice((-1, 0, 1)))
            except ValueError:
                day = start
            if start <= day <= end:
                return day
        return start + dt.timedelta(days=self.rng.randint(0, (end - start).days))

    def _needed(self, f: Field) -> bool:
        """Required from the window: marked so, or bound to a source with no default (the
        checked cases carry every fact themselves; no source is consulted)."""
        return f.required or (f.path in self.item.source_backed and not f.has_default)

    def case(self) -> Sample:
        as_of = self.as_of()
        facts: dict[str, Any] = {}
        for f in self.item.form_fields:
            if f.path == APPLICATION_DATE:
                value: Any = as_of.isoformat()
            elif not self._needed(f) and self.rng.random() < 0.2:
                continue  # left out: its default (if any) applies
            else:
                make = self.makers.get(f.kind)
                value = make(f, as_of) if make is not None else None
            if value is None:
                continue
            *parents, leaf = f.path.split(".")
            node = facts
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = value
        materials = [m.id for m in self.item.materials if self.rng.random() < 0.85]
        self.rng.shuffle(materials)
        return facts, materials


def sample_cases(item: Item, count: int, rng: random.Random) -> list[Sample]:
    """`count` generated cases of `item` (valid ones, as far as its form allows)."""
    maker = _Maker(item, rng)
    return [maker.case() for _ in range(count)]
