"""The domain model of a rule file: a standardized item, its form, materials and rules.

Plain frozen data; `rules/loader.py` builds it from YAML and `rules/compile.py` turns it into
engine rules. Conditions stay as the source text the rule author wrote plus their parsed tree.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from miaopi_server.lang import ast
from miaopi_server.lang.probes import term_of
from miaopi_server.rules.bindings import SourceBinding
from miaopi_server.rules.fieldtypes import Check, FieldType, FieldTypes, unchanged

ITEM_TYPES = (
    "行政许可",
    "行政给付",
    "行政确认",
    "行政备案",
    "行政奖励",
    "行政裁决",
    "其他行政权力",
    "公共服务",
)
OUTCOMES = ("APPROVE", "REJECT", "MANUAL_REVIEW")
# Working days an applicant has to supply deferrable (容缺后补) materials, unless the item's
# time_limit.supplement_working_days says otherwise.
DEFAULT_SUPPLEMENT_DAYS = 5
MATERIAL_NEEDS = ("required", "optional", "deferrable")
APPLICATION_DATE = "application.date"
NO_DEFAULT: Any = object()
COMPUTE = "compute"  # the `derive` of a derived fact computed by an expression
# The kind of a field whose `type` could not be read (already reported as an error).
UNKNOWN_KIND = "?"


@dataclass(frozen=True)
class Condition:
    """A condition as written (`source`) and parsed (`tree`).

    `locate` maps a character offset in `source` to (line, column) in the rule file, so that
    type errors found later point at the exact spot."""

    source: str
    tree: ast.Expr
    locate: Callable[[int], tuple[int, int]] = field(
        default=lambda pos: (1, 1), compare=False, repr=False
    )


@dataclass(frozen=True)
class Expression:
    """A computed value as written (`source`) and parsed (`tree`): a date moved by periods,
    `days between` two dates, a field or a literal (`compute:` of an output or derived fact)."""

    source: str
    tree: ast.Side
    locate: Callable[[int], tuple[int, int]] = field(
        default=lambda pos: (1, 1), compare=False, repr=False
    )

    @functools.cached_property
    def term(self) -> tuple[Any, ...]:
        """What `lang.probes.term_value` computes, built once."""
        return term_of(self.tree)

    @functools.cached_property
    def paths(self) -> tuple[str, ...]:
        """Fact paths it reads, in order of first appearance."""
        return tuple(dict.fromkeys(_term_paths(self.term)))


def _term_paths(term: tuple[Any, ...]) -> list[str]:
    if term[0] == "path":
        return [term[1]]
    return [p for part in term[1:] if isinstance(part, tuple) for p in _term_paths(part)]


@dataclass(frozen=True)
class LegalBasis:
    id: str
    law: str
    article: str = ""

    @property
    def citation(self) -> str:
        return f"《{self.law}》{self.article}"


@dataclass(frozen=True)
class RemedyBodies:
    """Who hears a challenge to a refusal (rules/remedies.py): the 行政复议机关 and the
    人民法院 ("": not configured)."""

    review_body: str = ""
    court: str = ""

    def over(self, default: RemedyBodies) -> RemedyBodies:
        """These bodies, each one not given taken from `default` (the department's)."""
        return RemedyBodies(self.review_body or default.review_body, self.court or default.court)

    @property
    def complete(self) -> bool:
        return bool(self.review_body and self.court)


@dataclass(frozen=True)
class Field:
    """One form field, or a derived fact (`derive` names the function computing it)."""

    path: str
    kind: str  # a field type name (rules/fieldtypes.py), or UNKNOWN_KIND
    label: str = ""
    required: bool = False
    default: Any = NO_DEFAULT
    minimum: float | None = None
    maximum: float | None = None
    exclusive_min: bool = False
    min_length: int = 0
    max_length: int = 0
    min_items: int = 0
    enum: tuple[tuple[str, str], ...] = ()  # (value, label)
    description: str = ""
    derive: str = ""
    derive_from: str = ""
    # A form field required only when this holds, or that must be absent when that holds
    # (checked in validation, decision/validate.py).
    required_when: Condition | None = None
    absent_when: Condition | None = None
    # A derived fact computed from the case (`derive` is COMPUTE): `derived: {x: {compute: ...}}`.
    compute: Expression | None = None

    @property
    def has_default(self) -> bool:
        return self.default is not NO_DEFAULT

    @property
    def derived(self) -> bool:
        return bool(self.derive)

    @property
    def enum_values(self) -> tuple[str, ...]:
        return tuple(v for v, _ in self.enum)


class FormCheck(NamedTuple):
    field: Field
    check: Check  # raises ValueRejected, or returns what derived facts are computed from
    normalize: Callable[[Any], Any] | None  # None: accepted values are used as given


@dataclass(frozen=True)
class Material:
    id: str
    name: str
    need: str  # required | optional | deferrable
    e_license: bool = False
    when: Condition | None = None
    # The e-license library's licence type that satisfies this material (免证办); "" : none.
    e_license_type: str = ""


@dataclass(frozen=True)
class OutputCase:
    """One case of an output table; `when` None is the fallback. With `compute` the value is
    computed from the case when the case is chosen (`value` is then None)."""

    value: Any
    when: Condition | None = None
    compute: Expression | None = None


@dataclass(frozen=True)
class Rule:
    id: str
    when: Condition
    outcome: str
    message: str
    basis: str
    outputs: tuple[tuple[str, tuple[OutputCase, ...]], ...] = ()


@dataclass(frozen=True)
class Item:
    """One standardized item as its rule file declares it."""

    code: str
    name: str
    type_name: str
    department: str
    statutory_days: int
    promised_days: int
    on_the_spot: bool
    version: str
    effective_from: dt.date | None
    effective_until: dt.date | None
    legal_basis: dict[str, LegalBasis]
    fields: dict[str, Field]
    materials: tuple[Material, ...]
    materials_basis: str
    rules: tuple[Rule, ...]
    # The registry the loader checked `fields` against; validation and compilation use it.
    field_types: FieldTypes = field(compare=False, repr=False)
    lists: dict[str, tuple[str, ...]] = field(default_factory=dict)
    source: str = ""
    digest: str = ""
    supplement_days: int = DEFAULT_SUPPLEMENT_DAYS
    # Facts looked up in shared data before deciding (rules/bindings.py), and whose licences
    # the materials with an `e_license_type` consult.
    sources: tuple[SourceBinding, ...] = ()
    e_license_holder: str = ""
    # Who hears a challenge to a refusal: the file's `remedies:` over its department's default.
    remedies: RemedyBodies = RemedyBodies()

    @property
    def starts(self) -> dt.date:
        """The first day this version is in force (date.min when unbounded)."""
        return self.effective_from or dt.date.min

    def in_force(self, day: dt.date) -> bool:
        """effective_from and effective_until are both inclusive; None means unbounded."""
        return (self.effective_from is None or self.effective_from <= day) and (
            self.effective_until is None or day <= self.effective_until
        )

    def field_at(self, path: str) -> Field | None:
        return self.fields.get(path)

    def type_of(self, f: Field) -> FieldType:
        """The field's type; raises UnknownFieldType for one its registry does not hold."""
        return self.field_types[f.kind]

    @functools.cached_property
    def form_fields(self) -> list[Field]:
        return [f for f in self.fields.values() if not f.derived]

    @functools.cached_property
    def form_checks(self) -> tuple[FormCheck, ...]:
        """Each form field with its type's check, looked up once per item rather than once
        per value validated."""
        return tuple(
            FormCheck(f, t.check, None if t.normalize is unchanged else t.normalize)
            for f in self.form_fields
            for t in (self.type_of(f),)
        )

    @functools.cached_property
    def derived_fields(self) -> list[Field]:
        return [f for f in self.fields.values() if f.derived]

    @functools.cached_property
    def computed(self) -> tuple[tuple[str, Expression], ...]:
        """Derived facts computed by an expression, in file order (the order they are
        computed in, after those derived by a function)."""
        return tuple((f.path, f.compute) for f in self.derived_fields if f.compute is not None)

    @functools.cached_property
    def source_backed(self) -> dict[str, tuple[SourceBinding, str]]:
        """Form fact path -> (its binding, the source field): the facts a window may leave out
        (免填表) and that are required once the lookup is done."""
        return {path: (b, name) for b in self.sources for path, name in b.facts}

    @functools.cached_property
    def subjects(self) -> frozenset[str]:
        """Every proper prefix of a field path: the objects that group facts."""
        return frozenset(
            ".".join(p.split(".")[:i]) for p in self.fields for i in range(1, p.count(".") + 1)
        )
