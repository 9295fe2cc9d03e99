"""`miaopi`: list items, decide a case, replay a case file, from a terminal or a script.

Exit codes: 0 success (any decision is a success), 1 RPC failure or replay mismatches,
2 bad input (INVALID_ARGUMENT, unreadable facts or case file, rule files that do not load,
usage), 3 NOT_FOUND. Errors go to stderr as one readable line, never a traceback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

from . import render
from .cases import load_cases
from .client import CaseFileError, Client, ClientError, MiaopiClientError
from .replay import ReplayReport, in_process, remote, replay

DEFAULT_TARGET = "127.0.0.1:50051"
OK, FAILED, BAD_INPUT, NOT_FOUND = 0, 1, 2, 3


class _InputError(MiaopiClientError):
    """A local input (facts file, rules directory) cannot be used: exit 2."""


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2))


def _err(message: str) -> None:
    print(f"miaopi: {message}", file=sys.stderr)


def _one_line(s: str) -> str:
    return " ".join(s.split())


def _load_facts(spec: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if spec == "-" else Path(spec).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _InputError(f"cannot read facts {spec}: {exc}") from None
    try:
        facts = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _InputError(f"facts {spec}: invalid JSON: {exc}") from None
    if not isinstance(facts, dict):
        raise _InputError(f"facts {spec}: must be a JSON object nested by subject")
    return facts


def _cmd_items(args: argparse.Namespace) -> int:
    with Client(args.target, args.timeout) as c:
        items = c.list_items()
    if args.json:
        _print_json(items)
    else:
        print(render.item_list(items))
    return OK


def _cmd_item(args: argparse.Namespace) -> int:
    with Client(args.target, args.timeout) as c:
        item = c.get_item(args.code)
    if args.json:
        _print_json(item)
    else:
        print(render.item(item))
    return OK


def _cmd_decide(args: argparse.Namespace) -> int:
    facts = _load_facts(args.facts)
    materials = [m.strip() for m in args.materials.split(",") if m.strip()]
    with Client(args.target, args.timeout) as c:
        d = c.decide(args.item, facts, materials, request_id=args.request_id,
                     window_id=args.window_id, operator_id=args.operator_id)
    if args.json:
        _print_json(d)
    else:
        print(render.decision(d, colour=render.use_colour(sys.stdout)))
    return OK


def _replay_in_process(args: argparse.Namespace, cases: list[Any]) -> ReplayReport:
    from miaopi_server.errors import RuleFileError  # only the in-process path needs the server

    try:
        decide_fn = in_process(args.rulesets, args.today)
    except RuleFileError as exc:
        raise _InputError(f"rule files in {args.rulesets} failed to load:\n{exc}") from None
    return replay(cases, decide_fn)


def _cmd_replay(args: argparse.Namespace) -> int:
    cases = load_cases(args.cases)
    if args.rulesets is not None:
        report = _replay_in_process(args, cases)
    else:
        with Client(args.replay_target or args.target, args.timeout) as c:
            report = replay(cases, remote(c))
    if args.json:
        print(report.to_json())
    else:
        print(render.replay_summary(report, str(args.cases)))
    return OK if report.failed == 0 else FAILED


def _rpc_error(exc: ClientError, target: str) -> int:
    if exc.code == "INVALID_ARGUMENT":
        _err(f"INVALID_ARGUMENT: {_one_line(exc.message)}")
        for field, description in exc.violations:
            print(f"  {field}: {description}", file=sys.stderr)
        return BAD_INPUT
    if exc.code == "NOT_FOUND":
        _err(f"NOT_FOUND: {_one_line(exc.message)}")
        return NOT_FOUND
    if exc.code in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
        _err(f"cannot reach server at {target} ({exc.code}): {_one_line(exc.message)}")
        return FAILED
    _err(f"{exc.code}: {_one_line(exc.message)}")
    return FAILED


def _date(s: str) -> dt.date:
    try:
        return dt.date.fromisoformat(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {s!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="miaopi", description="秒批 instant approval client")
    p.add_argument("--target", default=os.environ.get("MIAOPI_TARGET", DEFAULT_TARGET),
                   metavar="HOST:PORT",
                   help=f"server HOST:PORT (env MIAOPI_TARGET, default {DEFAULT_TARGET})")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per RPC (default 10)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("items", help="list the items the server decides")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(run=_cmd_items)

    s = sub.add_parser("item", help="show one item: form, materials, legal basis")
    s.add_argument("code", metavar="CODE")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(run=_cmd_item)

    s = sub.add_parser("decide", help="decide one case")
    s.add_argument("--item", required=True, metavar="CODE", help="item code")
    s.add_argument("--facts", required=True, metavar="FILE",
                   help='JSON object of facts; "-" reads stdin')
    s.add_argument("--materials", default="", metavar="A,B,C", help="submitted material ids")
    s.add_argument("--request-id", default="", metavar="ID")
    s.add_argument("--window-id", default="", metavar="ID")
    s.add_argument("--operator-id", default="", metavar="ID")
    s.add_argument("--json", action="store_true", help="print the decision as JSON")
    s.set_defaults(run=_cmd_decide)

    s = sub.add_parser("replay", help="replay a JSONL case file and check every expectation")
    s.add_argument("cases", type=Path, metavar="CASES.jsonl")
    where = s.add_mutually_exclusive_group()
    # Its own dest: a subparser default would otherwise overwrite the global --target.
    where.add_argument("--target", dest="replay_target", metavar="HOST:PORT",
                       help="decide on this server (default: the global --target)")
    where.add_argument("--rulesets", type=Path, metavar="DIR",
                       help="decide in-process with these rule files, no server")
    s.add_argument("--today", type=_date, metavar="YYYY-MM-DD",
                   help="date for cases without application.date (in-process only)")
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.set_defaults(run=_cmd_replay)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if getattr(args, "today", None) and args.rulesets is None:
            parser.error("--today needs --rulesets: a server decides with its own clock")
    except SystemExit as exc:  # argparse exits on usage errors and --help
        return exc.code if isinstance(exc.code, int) else BAD_INPUT
    try:
        return int(args.run(args))
    except ClientError as exc:
        return _rpc_error(exc, args.replay_target if getattr(args, "replay_target", None)
                          else args.target)
    except CaseFileError as exc:
        _err("bad case file:")
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return BAD_INPUT
    except _InputError as exc:
        _err(str(exc))
        return BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `miaopi items | head`: the reader left, not an error worth a trace
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - stops the flush at exit from failing
        return FAILED


if __name__ == "__main__":
    sys.exit(main())
