"""`miaopi rules ...`: offline tools for rule authors, working on a rules directory."""

from __future__ import annotations

from typing import Any

from . import authoring_lint, authoring_tools


def add_rules_parsers(sub: Any) -> None:
    rules = sub.add_parser("rules", help="lint, test, explain and diff rule files (offline)")
    rsub = rules.add_subparsers(dest="rules_command", required=True)
    authoring_lint.add_parsers(rsub)
    authoring_tools.add_parsers(rsub)
