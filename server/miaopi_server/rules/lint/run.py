"""Lint a rules directory and collect the report. Checks, in order:

1. `directory.compile_directory`: the loader (MP1xx), condition parser (MP2xx) and compiler
   (MP3xx) diagnostics, exactly as the server reports them, including MP199 for a file the
   loader crashes on.
2. The JSON Schema on every YAML file (MP150, `schema_check`).
3. A refusal must be able to name who hears a challenge to it (MP360, `remedies_check`).
4. Warnings (MP4xx, `item_warnings`), only for files that have no error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from miaopi_server.errors import Diagnostic
from miaopi_server.rules.directory import compile_directory
from miaopi_server.rules.lint.item_warnings import WARNING, item_warnings
from miaopi_server.rules.lint.remedies_check import missing_remedies
from miaopi_server.rules.lint.schema_check import (
    DEPARTMENTS_FILE,
    ITEM_FILE,
    LIST_FILE,
    schema_problems,
)
from miaopi_server.rules.lint.yaml_nodes import compose_file
from miaopi_server.rules.loader import (
    LISTS_DIR,
    department_files,
    display_path,
    item_files,
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
    compiled, diagnostics = compile_directory(root)
    lists_dir = root / LISTS_DIR
    list_files = sorted(lists_dir.rglob("*.y*ml")) if lists_dir.is_dir() else []
    paths = (
        [(p, ITEM_FILE) for p in item_files(root)]
        + [(p, LIST_FILE) for p in list_files]
        + [(p, DEPARTMENTS_FILE) for p in department_files(root)]
    )
    trees: dict[str, yaml.Node] = {}
    for path, kind in paths:
        display = display_path(root, path)
        tree = compose_file(path)
        if tree is None:
            continue  # unreadable or not YAML: the loader said so (MP100)
        trees[display] = tree
        already = {(d.line, d.column) for d in diagnostics if d.file == display}
        try:
            diagnostics.extend(schema_problems(display, tree, kind, already))
        except RecursionError:  # nesting Python cannot walk: say so, located at the file
            message = "YAML 嵌套过深，无法检查 / nesting too deep to check"
            diagnostics.append(Diagnostic(display, 1, 1, "MP100", message))
    for c in compiled:
        diagnostics.extend(missing_remedies(c, trees.get(c.item.source)))
    failed = {d.file for d in diagnostics if d.severity != WARNING}
    for c in compiled:
        if c.item.source not in failed and c.item.source in trees:
            diagnostics.extend(item_warnings(c, trees[c.item.source]))
    files = sorted(display_path(root, p) for p, _ in paths)
    return LintReport(sorted(set(diagnostics)), files)
