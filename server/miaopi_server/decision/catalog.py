"""The set of items a server (or an offline tool) decides: load a rules directory, compile
every file, register it in the engine, and decide cases by item code.

An item may have several rule-file versions, each in force from `effective_from` (and until
`effective_until`, both inclusive). A case is decided under the version in force on its
application.date, so a policy change never alters how earlier-dated cases are decided.

Loading is all-or-nothing: if any file has an error, `load_catalog` raises RuleFileError with
every diagnostic from every file, and nothing is registered.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from miaopi_server.decision.decide import Decision, decide
from miaopi_server.decision.engine import Engine, RulesetHandle
from miaopi_server.decision.sourced import Gathered
from miaopi_server.decision.validate import AsOf, asked_as_of, validate_case
from miaopi_server.decision.validator import Validator
from miaopi_server.errors import (
    CaseInvalid,
    Diagnostic,
    FieldViolation,
    ItemNotFound,
    RuleFileError,
)
from miaopi_server.rules.compile import CompiledItem
from miaopi_server.rules.directory import collector_paused, compile_directory
from miaopi_server.rules.model import APPLICATION_DATE, Item


@dataclass(frozen=True)
class LoadedItem:
    compiled: CompiledItem
    handle: RulesetHandle
    validator: Validator  # the item's validation, built once at load

    @property
    def item(self) -> Item:
        return self.compiled.item


@dataclass
class Catalog:
    engine: Engine
    versions: dict[str, list[LoadedItem]] = field(default_factory=dict)  # oldest first
    warnings: list[Diagnostic] = field(default_factory=list)

    @property
    def codes(self) -> list[str]:
        return sorted(self.versions)

    def versions_of(self, code: str) -> list[LoadedItem]:
        if not code:
            raise CaseInvalid([FieldViolation("item_code", "必填：事项编码")])
        found = self.versions.get(code)
        if not found:
            raise ItemNotFound(code)
        return found

    def in_force(self, code: str, day: dt.date) -> LoadedItem | None:
        for v in self.versions_of(code):
            if v.item.in_force(day):
                return v
        return None

    def current(self, code: str, today: dt.date) -> LoadedItem:
        """The version in force today, else the latest one (for catalogue display)."""
        return self.in_force(code, today) or self.versions_of(code)[-1]

    def select(self, code: str, facts: Any, today: dt.date) -> LoadedItem:
        """The version that decides this case: the one in force on its application.date."""
        return self.select_as_of(code, asked_as_of(facts, today))

    def select_as_of(self, code: str, asked: AsOf) -> LoadedItem:
        """`select` with the case's as-of date already read. An application.date that is not a
        valid as-of date (wrong type, not YYYY-MM-DD, out of range) never silently becomes
        today: validation refuses it, under the version current today (that version's form is
        as good as any for saying what is wrong)."""
        if asked.given is not None and asked.day is None:
            return self.current(code, asked.today)
        day = asked.date
        loaded = self.in_force(code, day)
        if loaded is None:
            raise CaseInvalid(
                [FieldViolation(f"facts.{APPLICATION_DATE}", f"{day} 没有生效的规则版本")]
            )
        return loaded

    def check(self, code: str, facts: Any, materials: Any, today: dt.date) -> None:
        """Raise CaseInvalid naming every bad field of the case, as `decide` would; no engine."""
        validate_case(self.select(code, facts, today).item, facts, materials, today)

    def decide(
        self,
        code: str,
        facts: Any,
        materials: Any,
        today: dt.date,
        gathered: Gathered | None = None,
    ) -> Decision:
        """`gathered`: what shared data said about the case, looked up before (ops/lookups.py)
        or read back from its record; None decides on the case's own facts."""
        asked = asked_as_of(facts, today)  # read once: it picks the version and dates the case
        loaded = self.select_as_of(code, asked)
        return decide(
            loaded.compiled,
            loaded.handle,
            self.engine,
            facts,
            materials,
            asked,
            gathered,
            loaded.validator,
        )

    def close(self) -> None:
        for versions in self.versions.values():
            for loaded in versions:
                self.engine.unregister(loaded.handle)
        self.versions.clear()


def load_catalog(root: Path, engine: Engine | None = None) -> Catalog:
    """Compile and register every item under `root`, or raise RuleFileError."""
    with collector_paused():
        return _load(root, engine)


def _load(root: Path, engine: Engine | None) -> Catalog:
    compiled, diagnostics = compile_directory(root)
    errors = [d for d in diagnostics if d.severity == "error"]
    if errors:
        raise RuleFileError(errors)
    catalog = Catalog(engine or Engine(), warnings=[d for d in diagnostics if d not in errors])
    try:
        for c in sorted(compiled, key=lambda c: (c.item.code, c.item.starts)):
            handle = catalog.engine.register(f"{c.item.code}@{c.item.version}", c.conditions)
            loaded = LoadedItem(c, handle, Validator(c.item))
            catalog.versions.setdefault(c.item.code, []).append(loaded)
    except Exception:
        catalog.close()
        raise
    return catalog
