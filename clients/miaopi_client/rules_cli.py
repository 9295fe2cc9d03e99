"""`miaopi rules ...`: tools for rule authors. lint, test, explain and diff work offline on a
rules directory; publish and show talk to a server (publishing is the admin's deliberate act;
show prints the archived text of a published set, e.g. the rules a decision was made under)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import authoring_lint, authoring_tools
from .client import Client
from .cmdline import OK, BadInput, print_json

Connect = Callable[[argparse.Namespace, str], Client]


def add_rules_parsers(
    sub: Any, connect: Connect, publish: Callable[[argparse.Namespace], int]
) -> None:
    rules = sub.add_parser(
        "rules",
        help="lint, test, explain and diff rule files (offline); publish and show (server)",
    )
    rsub = rules.add_subparsers(dest="rules_command", required=True)
    authoring_lint.add_parsers(rsub)
    authoring_tools.add_parsers(rsub)

    s = rsub.add_parser(
        "publish",
        help="publish the server's rules directory as it is now (admin; same as `miaopi reload`)",
        description="The server checks the set (compile gate and its own rule tests: the case "
        "files beside the rule files), archives it and records the publication, then it goes "
        "live; otherwise the previous set keeps serving and the problems are printed.",
    )
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(run=publish)

    s = rsub.add_parser(
        "show",
        help="print the archived files of a published rule set",
        description="DIGEST: the set digest (`miaopi reload` / the ruleset_published event) or "
        "a decision's ruleset digest: the exact rules it was decided under (复议). Needs a "
        "supervisor, admin or reviewer token.",
    )
    s.add_argument("--digest", required=True, metavar="DIGEST", help='"sha256:..."')
    s.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write the files under DIR (as DIR/<rules dir>/<file>) instead of printing them",
    )
    s.add_argument("--json", action="store_true", help="print the whole answer as JSON")

    def show(args: argparse.Namespace) -> int:
        with connect(args, "supervisor") as c:
            found = c.published_rules(args.digest)
        files = found.get("files", [])
        if args.out is not None:
            write_files(args.out, files)
            print(
                f"{len(files)} file(s) of {found['set_digest']} written to {args.out}",
                file=sys.stderr,
            )
            return OK
        if args.json:
            print_json(found)
            return OK
        first = found.get("first_published_at", "")
        print(f"# rule set {found['set_digest']}, first published {first}")
        for label, digest in sorted(found.get("versions", {}).items()):
            print(f"#   {label}  {digest}")
        for f in files:
            print(f"\n# ---- {f['path']}")
            sys.stdout.write(f.get("content", ""))
        return OK

    s.set_defaults(run=show)


def write_files(out: Path, files: list[dict[str, str]]) -> None:
    """Write archived files under `out`; a path leaving it (`..`, absolute) is refused."""
    root = out.resolve()
    for f in files:
        target = (root / f["path"]).resolve()
        if not target.is_relative_to(root):
            raise BadInput(f"refusing to write {f['path']!r} outside {out}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(f.get("content", "").encode("utf-8"))
        except OSError as exc:
            raise BadInput(f"cannot write {target}: {exc}") from None
