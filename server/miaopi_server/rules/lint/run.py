"""Lint a rules directory and collect the report. Checks, in order:

1. `directory.compile_directory`: the loader (MP1xx), condition parser (MP2xx) and compiler
   (MP3xx) diagnostics, exactly as the server reports them. Should the loader crash, files
   are loaded one by one and the one it crashes on is reported as MP199.
2. The JSON Schema on every YAML file (MP150, `schema_check`).
3. Warnings (MP4xx, `warnings`), only for files that have no error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from miaopi_server.errors import Diagnostic
from miaopi_server.rules.compile import CompiledItem, compile_item
from miaopi_server.rules.directory import compile_directory, version_overlaps
from miaopi_server.rules.lint.item_warnings import WARNING, item_warnings
from miaopi_server.rules.lint.schema_check import schema_problems
from miaopi_server.rules.lint.yaml_nodes import compose_file
from miaopi_server.rules.loader import (
    LISTS_DIR,
    display_path,
    item_files,
    load_rule_file,
    load_shared_lists,
)


@dataclass(frozen=True)
class LintReport:
    """Every diagnostic (sorted) and the files that were looked at (display paths)."""

    diagnostics: list[Diagnostic]
    files: list[str] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(d.severity != WARNING for d in self.diagnostics)

    @property
    def warnings(self) -> int:
        return sum(d.severity == WARNING for d in self.diagnostics)


def lint_directory(root: Path) -> list[Diagnostic]:
    """Errors and warnings for every rule file under `root`, sorted by file:line:column."""
    return lint(root).diagnostics


def lint(root: Path) -> LintReport:
    """Every error the server would refuse to load `root` for, plus warnings about rules that
    can never matter. Nothing is executed and nothing is registered in the engine."""
    try:
        compiled, diagnostics = compile_directory(root)
    except Exception:  # a loader defect must not hide every other file's problems
        compiled, diagnostics = _compile_each(root)
    lists_dir = root / LISTS_DIR
    list_files = sorted(lists_dir.rglob("*.y*ml")) if lists_dir.is_dir() else []
    paths = [(p, False) for p in item_files(root)] + [(p, True) for p in list_files]
    trees: dict[str, yaml.Node] = {}
    for path, is_list in paths:
        display = display_path(root, path)
        tree = compose_file(path)
        if tree is None:
            continue  # unreadable or not YAML: the loader said so (MP100)
        trees[display] = tree
        already = {(d.line, d.column) for d in diagnostics if d.file == display}
        diagnostics.extend(schema_problems(display, tree, is_list, already))
    failed = {d.file for d in diagnostics if d.severity != WARNING}
    for c in compiled:
        if c.item.source not in failed and c.item.source in trees:
            diagnostics.extend(item_warnings(c, trees[c.item.source]))
    files = sorted(display_path(root, p) for p, _ in paths)
    return LintReport(sorted(set(diagnostics)), files)


def _compile_each(root: Path) -> tuple[list[CompiledItem], list[Diagnostic]]:
    """`compile_directory`, one file at a time: a file the loader crashes on becomes MP199."""
    lists, diagnostics = load_shared_lists(root)
    compiled: list[CompiledItem] = []
    files = item_files(root)
    if not files:
        diagnostics.append(Diagnostic(str(root), 1, 1, "MP109", "目录中没有规则文件"))
    for path in files:
        try:
            item, diags = load_rule_file(path, root, lists)
            diagnostics.extend(diags)
            if item is None:
                continue
            c, diags = compile_item(item)
        except Exception as exc:
            message = (
                f"加载器内部错误 {type(exc).__name__}: {exc}（服务端加载此文件同样会出错，"
                "请报告此缺陷；先修正本文件的其他问题通常可以绕过）"
            )
            diagnostics.append(Diagnostic(display_path(root, path), 1, 1, "MP199", message))
            continue
        diagnostics.extend(diags)
        compiled.append(c)
    diagnostics.extend(version_overlaps(compiled))
    return compiled, diagnostics
