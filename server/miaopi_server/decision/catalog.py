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
import gc
import itertools
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from miaopi_server.decision.decide import Decision, decide
from miaopi_server.decision.engine import Engine, RulesetHandle
from miaopi_server.errors import (
    CaseInvalid,
    Diagnostic,
    FieldViolation,
    ItemNotFound,
    RuleFileError,
)
from miaopi_server.rules.compile import CompiledItem, compile_item
from miaopi_server.rules.loader import item_files, load_rule_file, load_shared_lists
from miaopi_server.rules.model import APPLICATION_DATE, Item

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class LoadedItem:
    compiled: CompiledItem
    handle: RulesetHandle

    @property
    def item(self) -> Item:
        return self.compiled.item


def _start(item: Item) -> dt.date:
    return item.effective_from or dt.date.min


def case_date(facts: Any, today: dt.date) -> dt.date:
    """The as-of date a case asks for: a valid application.date, else today.
    (An invalid date is reported by validation; today's version validates it.)"""
    subject, _, name = APPLICATION_DATE.partition(".")
    value = facts.get(subject, {}) if isinstance(facts, dict) else None
    value = value.get(name) if isinstance(value, dict) else None
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    return today


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
        return next((v for v in self.versions_of(code) if v.item.in_force(day)), None)

    def current(self, code: str, today: dt.date) -> LoadedItem:
        """The version in force today, else the latest one (for catalogue display)."""
        return self.in_force(code, today) or self.versions_of(code)[-1]

    def select(self, code: str, facts: Any, today: dt.date) -> LoadedItem:
        """The version that decides this case: the one in force on its application.date."""
        day = case_date(facts, today)
        loaded = self.in_force(code, day)
        if loaded is None:
            raise CaseInvalid(
                [FieldViolation(f"facts.{APPLICATION_DATE}", f"{day} 没有生效的规则版本")]
            )
        return loaded

    def decide(self, code: str, facts: Any, materials: Any, today: dt.date) -> Decision:
        loaded = self.select(code, facts, today)
        return decide(loaded.compiled, loaded.handle, self.engine, facts, materials, today)

    def close(self) -> None:
        for versions in self.versions.values():
            for loaded in versions:
                self.engine.unregister(loaded.handle)
        self.versions.clear()


def _overlaps(compiled: list[CompiledItem]) -> list[Diagnostic]:
    """Versions of one item must not be in force on the same day."""
    out: list[Diagnostic] = []
    by_code: dict[str, list[Item]] = {}
    for c in compiled:
        by_code.setdefault(c.item.code, []).append(c.item)
    for items in by_code.values():
        items.sort(key=_start)
        for a, b in itertools.pairwise(items):
            if a.effective_until is None or a.effective_until >= _start(b):
                if a.effective_from == b.effective_from:
                    message = f"事项 {b.code} 已在 {a.source} 中以相同生效日期定义"
                    out.append(Diagnostic(b.source, 1, 1, "MP108", message))
                else:
                    message = (
                        f"事项 {b.code} 的版本 {a.version}（{a.source}）须在 "
                        f"{_start(b)} 之前以 effective_until 结束"
                    )
                    out.append(Diagnostic(a.source, 1, 1, "MP111", message))
    return out


def compile_directory(root: Path) -> tuple[list[CompiledItem], list[Diagnostic]]:
    """Load and compile every rule file under `root`; diagnostics include warnings."""
    lists, diagnostics = load_shared_lists(root)
    compiled: list[CompiledItem] = []
    files = item_files(root)
    if not files:
        diagnostics.append(Diagnostic(str(root), 1, 1, "MP109", "目录中没有规则文件"))
    for i, path in enumerate(files, 1):
        if i % 16 == 0:
            # Young generations only: frees the YAML loaders' reference cycles (left behind
            # while loading pauses the collector) without rescanning the model built so far.
            gc.collect(1)
        item, diags = load_rule_file(path, root, lists)
        diagnostics.extend(diags)
        if item is None:
            continue
        c, diags = compile_item(item)
        diagnostics.extend(diags)
        compiled.append(c)
    diagnostics.extend(_overlaps(compiled))
    return compiled, diagnostics


_pause = {"depth": 0, "was_enabled": True}
_pause_lock = threading.Lock()


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Loading allocates hundreds of thousands of long-lived objects and no cyclic garbage
    worth collecting; the cyclic collector would rescan them all again and again (30% of
    loading 1,000 items). Nested and concurrent pauses are counted; the last one out puts
    the collector back as the first one in found it."""
    with _pause_lock:
        if _pause["depth"] == 0:
            _pause["was_enabled"] = gc.isenabled()
            gc.disable()
        _pause["depth"] += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pause["depth"] -= 1
            if _pause["depth"] == 0 and _pause["was_enabled"]:
                gc.enable()


def load_catalog(root: Path, engine: Engine | None = None) -> Catalog:
    """Compile and register every item under `root`, or raise RuleFileError."""
    with _collector_paused():
        return _load(root, engine)


def _load(root: Path, engine: Engine | None) -> Catalog:
    compiled, diagnostics = compile_directory(root)
    errors = [d for d in diagnostics if d.severity == "error"]
    if errors:
        raise RuleFileError(errors)
    catalog = Catalog(engine or Engine(), warnings=[d for d in diagnostics if d not in errors])
    try:
        for c in sorted(compiled, key=lambda c: (c.item.code, _start(c.item))):
            handle = catalog.engine.register(f"{c.item.code}@{c.item.version}", c.conditions)
            catalog.versions.setdefault(c.item.code, []).append(LoadedItem(c, handle))
    except Exception:
        catalog.close()
        raise
    return catalog
