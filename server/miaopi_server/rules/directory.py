"""Load and compile every rule file of a rules directory (no engine involved): what the
server loads, lint checks and the authoring tools compare. Nothing is registered here."""

from __future__ import annotations

import gc
import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from miaopi_server.errors import Diagnostic
from miaopi_server.rules.compile import CompiledItem, compile_item
from miaopi_server.rules.loader import (
    display_path,
    item_files,
    load_departments,
    load_rule_file,
    load_shared_lists,
)
from miaopi_server.rules.model import Item


def version_overlaps(compiled: list[CompiledItem]) -> list[Diagnostic]:
    """Versions of one item must not be in force on the same day."""
    out: list[Diagnostic] = []
    by_code: dict[str, list[Item]] = {}
    for c in compiled:
        by_code.setdefault(c.item.code, []).append(c.item)
    for items in by_code.values():
        items.sort(key=lambda i: i.starts)
        for a, b in itertools.pairwise(items):
            if a.effective_until is None or a.effective_until >= b.starts:
                if a.effective_from == b.effective_from:
                    message = f"事项 {b.code} 已在 {a.source} 中以相同生效日期定义"
                    out.append(Diagnostic(b.source, 1, 1, "MP108", message))
                else:
                    message = (
                        f"事项 {b.code} 的版本 {a.version}（{a.source}）须在 "
                        f"{b.starts} 之前以 effective_until 结束"
                    )
                    out.append(Diagnostic(a.source, 1, 1, "MP111", message))
    return out


def compile_directory(root: Path) -> tuple[list[CompiledItem], list[Diagnostic]]:
    """Load and compile every rule file under `root`; diagnostics include warnings. A file the
    loader or compiler crashes on is reported as MP199 (a defect of ours), never raised."""
    lists, diagnostics = load_shared_lists(root)
    departments, more = load_departments(root)
    diagnostics.extend(more)
    compiled: list[CompiledItem] = []
    files = item_files(root)
    if not files:
        diagnostics.append(Diagnostic(str(root), 1, 1, "MP109", "目录中没有规则文件"))
    for i, path in enumerate(files, 1):
        if i % 16 == 0:
            # Young generations only: frees the YAML loaders' reference cycles (left behind
            # while loading pauses the collector) without rescanning the model built so far.
            gc.collect(1)
        try:
            item, diags = load_rule_file(path, root, lists, departments=departments)
            diagnostics.extend(diags)
            if item is None:
                continue
            c, diags = compile_item(item)
        except Exception as exc:  # a loader defect must not hide every other file's problems
            message = (
                f"加载器内部错误 {type(exc).__name__}: {exc}（这是 miaopi 的缺陷，请报告；"
                "先修正本文件的其他问题通常可以绕过）"
            )
            diagnostics.append(Diagnostic(display_path(root, path), 1, 1, "MP199", message))
            continue
        diagnostics.extend(diags)
        compiled.append(c)
    diagnostics.extend(version_overlaps(compiled))
    return compiled, diagnostics


_pause = {"depth": 0, "was_enabled": True}
_pause_lock = threading.Lock()


@contextmanager
def collector_paused() -> Iterator[None]:
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
