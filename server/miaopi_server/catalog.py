"""The set of items a server (or an offline tool) decides: load a rules directory, compile
every file, register it in the engine, and decide cases by item code.

Loading is all-or-nothing: if any file has an error, `load_catalog` raises RuleFileError with
every diagnostic from every file, and nothing is registered.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .compile import CompiledItem, compile_item
from .decide import Decision, decide
from .engine import Engine, RulesetHandle
from .errors import CaseInvalid, Diagnostic, FieldViolation, ItemNotFound, RuleFileError
from .model import Item
from .rulefile import item_files, load_rule_file, load_shared_lists


@dataclass(frozen=True)
class LoadedItem:
    compiled: CompiledItem
    handle: RulesetHandle

    @property
    def item(self) -> Item:
        return self.compiled.item


@dataclass
class Catalog:
    engine: Engine
    items: dict[str, LoadedItem] = field(default_factory=dict)
    warnings: list[Diagnostic] = field(default_factory=list)

    def get(self, code: str) -> LoadedItem:
        if not code:
            raise CaseInvalid([FieldViolation("item_code", "必填：事项编码")])
        loaded = self.items.get(code)
        if loaded is None:
            raise ItemNotFound(code)
        return loaded

    def decide(self, code: str, facts: Any, materials: Any, today: dt.date) -> Decision:
        loaded = self.get(code)
        return decide(loaded.compiled, loaded.handle, self.engine, facts, materials, today)

    def close(self) -> None:
        for loaded in self.items.values():
            self.engine.unregister(loaded.handle)
        self.items.clear()


def compile_directory(root: Path) -> tuple[list[CompiledItem], list[Diagnostic]]:
    """Load and compile every rule file under `root`; diagnostics include warnings."""
    lists, diagnostics = load_shared_lists(root)
    compiled: list[CompiledItem] = []
    seen: dict[str, str] = {}
    files = item_files(root)
    if not files:
        diagnostics.append(Diagnostic(str(root), 1, 1, "MP109", "目录中没有规则文件"))
    for path in files:
        item, diags = load_rule_file(path, root, lists)
        diagnostics.extend(diags)
        if item is None:
            continue
        if item.code in seen:
            diagnostics.append(
                Diagnostic(
                    item.source, 1, 1, "MP108", f"事项 {item.code} 已在 {seen[item.code]} 中定义"
                )
            )
            continue
        seen[item.code] = item.source
        c, diags = compile_item(item)
        diagnostics.extend(diags)
        compiled.append(c)
    return compiled, diagnostics


def load_catalog(root: Path, engine: Engine | None = None) -> Catalog:
    """Compile and register every item under `root`, or raise RuleFileError."""
    compiled, diagnostics = compile_directory(root)
    errors = [d for d in diagnostics if d.severity == "error"]
    if errors:
        raise RuleFileError(errors)
    catalog = Catalog(engine or Engine(), warnings=[d for d in diagnostics if d not in errors])
    try:
        for c in compiled:
            handle = catalog.engine.register(c.item.code, c.conditions)
            catalog.items[c.item.code] = LoadedItem(c, handle)
    except Exception:
        catalog.close()
        raise
    return catalog
