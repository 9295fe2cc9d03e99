"""Lint a rules directory: every error the server would refuse to load, plus warnings about
rules that can never matter, each located as file:line:column.

    run             lint(root) -> LintReport: the checks in order, the report
    schema_check    MP150: the JSON Schema, reported on the YAML node
    item_warnings   MP401-MP407
    contradictions  whether a condition can never hold (used by MP401, MP402, MP406)
    yaml_nodes      YAML node trees: entries and positions
"""

from miaopi_server.rules.lint.contradictions import never_holds
from miaopi_server.rules.lint.run import LintReport, lint, lint_directory

__all__ = ["LintReport", "lint", "lint_directory", "never_holds"]
