"""`miaopi rules lint DIR`: check a rules directory offline, the way the server loads it, plus the
JSON Schema (shipped with the server) and warnings about rules that can never matter.

Output: one line per problem, `file:line:column: error|warning CODE: message`, then a summary
line; `--json` prints a list of objects instead. Exit 0 when there is no error (with `--strict`,
no warning either), 1 otherwise, 2 when DIR cannot be linted (missing, not a directory).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .cmdline import FAILED, OK, BadInput, print_json


def add_parsers(rsub: Any) -> None:
    """Register this module's `miaopi rules` subcommands."""
    s = rsub.add_parser(
        "lint",
        help="check rule files: every load error, schema problems and warnings",
        description=(
            "Check every rule file under DIR without a server: the errors that would stop the "
            "server from loading it, JSON Schema violations, and warnings (rules that never "
            "match, no way to approve, unread fields, uncited legal bases, unused lists, "
            "unreachable output cases). Codes are listed in docs/RULES.md."
        ),
    )
    s.add_argument("dir", type=Path, metavar="DIR", help="rules directory, e.g. rulesets")
    s.add_argument("--strict", action="store_true", help="fail (exit 1) on warnings too")
    s.add_argument("--json", action="store_true", help="print the diagnostics as JSON")
    s.set_defaults(run=_cmd_lint)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def summary(errors: int, warnings: int, files: int) -> str:
    """`3 errors, 1 warning in 5 files`."""
    return f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')} in {_plural(files, 'file')}"


def _cmd_lint(args: argparse.Namespace) -> int:
    from miaopi_server.offline import lint  # only this command needs the server

    root: Path = args.dir
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a directory"
        raise BadInput(f"rules directory {root} {what}")
    report = lint(root)
    if args.json:
        rows = [
            {
                "file": d.file,
                "line": d.line,
                "column": d.column,
                "severity": d.severity,
                "code": d.code,
                "message": d.message,
            }
            for d in report.diagnostics
        ]
        print_json(rows)
    else:
        for d in report.diagnostics:
            print(d)
        print(summary(report.errors, report.warnings, len(report.files)))
    failed = report.errors > 0 or (args.strict and report.warnings > 0)
    return FAILED if failed else OK
